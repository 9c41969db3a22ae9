//! cargo-fuzz entry point for the `encoders` target; the target is `porthole_core::sim::fuzz::encoders`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porthole_core::sim::fuzz::encoders::run(data));
