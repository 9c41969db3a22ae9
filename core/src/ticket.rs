//! Stream tickets: short-lived, single-use credentials for opening one stream.
//!
//! A browser's `EventSource` and `WebSocket` cannot set headers, so a page that
//! holds the bearer token cannot present it when it opens a stream, and the
//! long-lived token must never travel in a URL (URLs end up in logs and
//! history). Instead the page asks for a ticket with the token, then opens the
//! stream with `?ticket=`. A ticket names one binding, opens one stream, and
//! expires on the engine's clock.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use rand_core::Rng;

/// A stream ticket: 128 random bits, written as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket([u8; 16]);

/// A string that is not a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a ticket (expected 32 hex digits)")]
pub struct ParseTicketError;

impl Ticket {
    pub(crate) fn generate(rng: &mut impl Rng) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Ticket(bytes)
    }

    /// Compares in time that does not depend on where the bytes differ, so a
    /// client probing tickets learns nothing from response times.
    fn same(&self, other: &Ticket) -> bool {
        self.0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A ticket is a credential: never print it.
        f.write_str("Ticket(<redacted>)")
    }
}

impl FromStr for Ticket {
    type Err = ParseTicketError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 32 {
            return Err(ParseTicketError);
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(s.chunks_exact(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| ParseTicketError)?;
            if !text.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(ParseTicketError);
            }
            *byte = u8::from_str_radix(text, 16).map_err(|_| ParseTicketError)?;
        }
        Ok(Ticket(bytes))
    }
}

/// A binding's unused tickets, each with its expiry. At most one per
/// subscriber the binding may have, so it stays a short list.
#[derive(Debug, Default)]
pub(crate) struct Tickets(Vec<(Ticket, Instant)>);

impl Tickets {
    /// Forgets the tickets that expired by `now`.
    fn prune(&mut self, now: Instant) {
        self.0.retain(|&(_, expires)| expires > now);
    }

    /// Files a new ticket, unless `max` unused ones are held already.
    pub(crate) fn issue(
        &mut self,
        ticket: Ticket,
        expires: Instant,
        max: usize,
        now: Instant,
    ) -> bool {
        self.prune(now);
        if self.0.len() >= max {
            return false;
        }
        self.0.push((ticket, expires));
        true
    }

    /// Uses up `ticket`: whether it was held and had not expired.
    pub(crate) fn redeem(&mut self, ticket: &Ticket, now: Instant) -> bool {
        self.prune(now);
        // Compare with every held ticket, so timing does not tell which matched.
        let found = self.0.iter().fold(None, |found, (held, _)| {
            found.or(held.same(ticket).then_some(*held))
        });
        match found {
            Some(used) => {
                self.0.retain(|(held, _)| !held.same(&used));
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ticket(n: u8) -> Ticket {
        Ticket([n; 16])
    }

    #[test]
    fn tickets_round_trip_through_text_and_refuse_anything_else() {
        let t = Ticket([0xab; 16]);
        let text = t.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<Ticket>(), Ok(t));
        for bad in [
            "",
            "ab",
            &text[..31],
            &format!("{text}0"),
            "+bababababababababababababababab",
        ] {
            assert_eq!(bad.parse::<Ticket>(), Err(ParseTicketError), "{bad}");
        }
        assert_eq!(format!("{t:?}"), "Ticket(<redacted>)");
    }

    #[test]
    fn a_ticket_opens_one_stream_before_it_expires() {
        let now = Instant::now();
        let mut held = Tickets::default();
        assert!(held.issue(ticket(1), now + Duration::from_secs(30), 4, now));
        assert!(!held.redeem(&ticket(2), now), "never issued");
        assert!(held.redeem(&ticket(1), now));
        assert!(!held.redeem(&ticket(1), now), "single use");

        assert!(held.issue(ticket(3), now + Duration::from_secs(30), 4, now));
        assert!(
            !held.redeem(&ticket(3), now + Duration::from_secs(30)),
            "expired"
        );
    }

    #[test]
    fn a_binding_holds_a_bounded_number_of_unused_tickets() {
        let now = Instant::now();
        let later = now + Duration::from_secs(30);
        let mut held = Tickets::default();
        assert!(held.issue(ticket(1), later, 2, now));
        assert!(held.issue(ticket(2), later, 2, now));
        assert!(!held.issue(ticket(3), later, 2, now));
        // Expired ones make room.
        assert!(held.issue(ticket(3), later + Duration::from_secs(30), 2, later));
    }
}
