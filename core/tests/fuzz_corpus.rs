//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! fuzz targets, so a regression any corpus input catches fails `cargo test`
//! on stable, without nightly or cargo-fuzz.
//!
//! The targets are `porthole_core::sim::fuzz`, the very functions the
//! cargo-fuzz entry points call; they need the `fuzz` feature, as CI's
//! `cargo test --workspace --all-features` has.
#![cfg(feature = "fuzz")]

use std::path::{Path, PathBuf};
use std::time::Instant;

use porthole_core::sim::fuzz;

/// The corpus of `target`: every file, sorted, with its bytes.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, data)
        })
        .collect()
}

/// Runs every corpus file of `target`; fails naming every file that panicked.
fn replay(target: &str, min_files: usize, run: fn(&[u8])) {
    let files = corpus(target);
    assert!(
        files.len() >= min_files,
        "{target}: {} corpus files, expected at least {min_files}",
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter(|(_, data)| std::panic::catch_unwind(|| run(data)).is_err())
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
}

#[test]
fn decoders_corpus_replays_clean() {
    replay("decoders", 20, fuzz::decoders::run);
}

#[test]
fn encoders_corpus_replays_clean() {
    replay("encoders", 5, fuzz::encoders::run);
}

#[test]
fn engine_corpus_replays_clean() {
    replay("engine", 8, |data| fuzz::engine(data, Instant::now()));
}
