//! The fuzz targets' properties, shared by the cargo-fuzz entry points
//! (`fuzz/fuzz_targets/*.rs`, nightly) and the stable replay of their
//! committed corpora (`core/tests/fuzz_corpus.rs`): both call these, so a
//! corpus input means the same thing to both.
//!
//! Each target takes arbitrary bytes and panics when a property fails:
//! [`engine`] (a [`Script`] played against the engine, checked at every
//! step), [`decoders::run`] (every parser of client-controlled input) and
//! [`encoders::run`] (what the API writes out, for arbitrary values).

use std::time::{Duration, Instant};

use super::Script;

pub mod decoders;
pub mod encoders;

/// The `engine` target: decodes `data` into a [`Script`], runs it twice
/// (from `epoch`, then from a second later) and checks that both runs record
/// the same trace, byte for byte. The caller gives the epoch, as everything
/// in this crate is given its time.
///
/// # Panics
///
/// When a run breaks an invariant (see [`Script::run`]) or the two runs differ.
pub fn engine(data: &[u8], epoch: Instant) {
    let Some(script) = Script::decode(data) else {
        return;
    };
    let first = script.run(epoch);
    // Another epoch: the trace must not depend on it either.
    let second = script.run(epoch + Duration::from_secs(1));
    assert!(first == second, "same script, different traces");
}
