//! The record of a run: every input and every action, in order.

use std::fmt;
use std::time::Duration;

use crate::Action;
use crate::Input;

/// One line of a [`Trace`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// An input fed to the engine, `at` after the start of the run.
    Input {
        /// Simulated time since the start of the run.
        at: Duration,
        /// The input.
        input: Input,
    },
    /// An action the engine emitted, in the order it emitted them.
    Action(Action),
}

impl fmt::Display for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Input { at, input } => write!(f, "{:>12.6} > {input:?}", at.as_secs_f64()),
            Record::Action(action) => write!(f, "{:>12} < {action:?}", ""),
        }
    }
}

/// Everything that went in and out of the engine during a run.
///
/// Times are offsets from the start of the run and timestamps derive from a fixed
/// wall-clock anchor, so two runs of the same seed produce equal traces and equal
/// text (`to_string()`), byte for byte, whatever `Instant` they started at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    records: Vec<Record>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Self {
        Trace::default()
    }

    /// An empty trace with room for `records` records.
    pub fn with_capacity(records: usize) -> Self {
        Trace {
            records: Vec::with_capacity(records),
        }
    }

    /// Appends a record.
    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    /// Every record, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The last `n` records as text, for a failure message.
    pub fn tail(&self, n: usize) -> String {
        let start = self.records.len().saturating_sub(n);
        let mut out = String::new();
        for record in &self.records[start..] {
            out.push_str(&record.to_string());
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for record in &self.records {
            writeln!(f, "{record}")?;
        }
        Ok(())
    }
}
