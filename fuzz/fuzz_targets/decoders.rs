//! cargo-fuzz entry point for the `decoders` target; the target is `porthole_core::sim::fuzz::decoders`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porthole_core::sim::fuzz::decoders::run(data));
