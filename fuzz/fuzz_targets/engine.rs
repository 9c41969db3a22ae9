//! cargo-fuzz entry point for the `engine` target; the logic is in `porthole_fuzz::engine`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| porthole_fuzz::engine::run(data));
