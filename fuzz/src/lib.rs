//! Fuzz targets for Porthole, shared by the cargo-fuzz entry points
//! (`fuzz_targets/*.rs`, nightly) and the stable corpus replay in
//! porthole-core's `tests/fuzz_corpus.rs`, which includes this module tree by path.
//!
//! Each module has a `run(data: &[u8])` that panics when a property fails.

pub mod decoders;
pub mod encoders;
pub mod engine;
