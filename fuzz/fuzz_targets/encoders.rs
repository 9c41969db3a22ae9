//! cargo-fuzz entry point for the `encoders` target; the logic is in `porthole_fuzz::encoders`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porthole_fuzz::encoders::run(data));
