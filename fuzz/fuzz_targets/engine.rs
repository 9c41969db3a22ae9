//! cargo-fuzz entry point for the `engine` target; the target is `porthole_core::sim::fuzz::engine`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    porthole_core::sim::fuzz::engine(data, std::time::Instant::now())
});
