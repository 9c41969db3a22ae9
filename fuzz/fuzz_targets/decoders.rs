//! cargo-fuzz entry point for the `decoders` target; the logic is in `porthole_fuzz::decoders`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porthole_fuzz::decoders::run(data));
