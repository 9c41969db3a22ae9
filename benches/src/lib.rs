//! Benchmarks of Porthole. The code lives in `benches/`: run them with
//! `cargo bench -p porthole-benches`; `README.md` beside this crate has the
//! figures and the commands that produced them.
