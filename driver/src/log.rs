//! Log lines of the bindings' lives: bound, closed (unbound, expired,
//! shutdown) at `info`, and a warning the first time a binding loses
//! datagrams. The driver calls in as it carries out the engine's actions; the
//! engine itself logs nothing.

use std::collections::{HashMap, HashSet};
use std::fmt;

use porthole_core::{BindingId, Command, Engine, Reply};

/// A binding id cut to its first 8 hex digits: enough to follow one binding
/// through a log, too little to use it (the whole id is a capability).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Short(pub(crate) BindingId);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0.as_bytes()[..4] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Which losses a binding was already warned about.
#[derive(Debug, Default, Clone, Copy)]
struct Warned {
    overflow: bool,
    missed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    /// Bindings an unbind command is closing: their close is `unbound`.
    unbinding: HashSet<BindingId>,
    warned: HashMap<BindingId, Warned>,
}

impl Lifecycle {
    /// Before the engine gets `command`.
    pub(crate) fn command(&mut self, command: &Command, engine: &Engine) {
        if let Command::Unbind { binding } = command {
            if engine.binding(binding).is_some() {
                self.unbinding.insert(*binding);
            }
        }
    }

    pub(crate) fn reply(&mut self, reply: &Reply) {
        if let Reply::Bind(Ok(info)) = reply {
            tracing::info!(
                binding = %Short(info.id),
                local_addr = %info.local_addr,
                lease_secs = info.lease.as_secs(),
                "bound"
            );
        }
    }

    /// The engine closed `binding`'s socket. It closes one for an unbind, at
    /// shutdown, or at the lease's end, so the reason follows from which.
    pub(crate) fn closed(&mut self, binding: BindingId, engine: &Engine) {
        self.warned.remove(&binding);
        let reason = if self.unbinding.remove(&binding) {
            "unbound"
        } else if engine.is_shut_down() {
            "shutdown"
        } else {
            "expired"
        };
        tracing::info!(binding = %Short(binding), reason, "closed");
    }

    /// After datagrams for `binding` were fed to the engine: warns once per
    /// binding and kind of loss.
    pub(crate) fn received(&mut self, binding: BindingId, engine: &Engine) {
        let warned = self.warned.get(&binding).copied().unwrap_or_default();
        if warned.overflow && warned.missed {
            return;
        }
        let Some(info) = engine.binding(&binding) else {
            return;
        };
        let c = info.counters;
        let mut now = warned;
        if c.dropped_overflow > 0 && !warned.overflow {
            now.overflow = true;
            tracing::warn!(
                binding = %Short(binding),
                dropped = c.dropped_overflow,
                "datagrams dropped: the replay ring was full and no subscriber had taken them"
            );
        }
        if c.missed > 0 && !warned.missed {
            now.missed = true;
            tracing::warn!(
                binding = %Short(binding),
                missed = c.missed,
                "a subscriber is too slow and missed datagrams (reported to it as lagged)"
            );
        }
        if now.overflow != warned.overflow || now.missed != warned.missed {
            self.warned.insert(binding, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_are_the_first_eight_hex_digits() {
        let id: BindingId = "1b4e28ba-2fa1-41d2-883f-0016d3cca427".parse().unwrap();
        assert_eq!(Short(id).to_string(), "1b4e28ba");
    }
}
