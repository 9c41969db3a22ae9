//! Identifiers: binding capabilities, subscribers, requests and sequence numbers.

use std::fmt;
use std::str::FromStr;

use rand_core::Rng;

/// The capability that names a binding.
///
/// 122 random bits laid out as a version-4 UUID
/// (`xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`), so it is unguessable, URL-safe and
/// looks like the ids koi-udp hands out. Only the canonical form parses: 36
/// characters, hex digits (either case) and dashes at the right places, with the
/// version and variant bits of a v4 UUID.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BindingId([u8; 16]);

/// A string that is not a binding id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a binding id (expected a version-4 UUID such as 1b4e28ba-2fa1-41d2-883f-0016d3cca427)"
)]
pub struct ParseBindingIdError;

impl BindingId {
    /// Draws a fresh id from `rng` and sets the v4 UUID version and variant bits.
    pub(crate) fn generate(rng: &mut impl Rng) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        BindingId(bytes)
    }

    /// The id's 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// Builds an id from 16 bytes, if they carry the v4 version and variant bits.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes[6] >> 4 == 4 && bytes[8] >> 6 == 0b10).then_some(BindingId(bytes))
    }
}

impl fmt::Display for BindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 36];
        encode_uuid(&self.0, &mut out);
        // The buffer holds ASCII hex digits and dashes only.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for BindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BindingId({self})")
    }
}

const DASHES: [usize; 4] = [8, 13, 18, 23];

fn encode_uuid(bytes: &[u8; 16], out: &mut [u8; 36]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pos = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[pos] = b'-';
            pos += 1;
        }
        out[pos] = HEX[usize::from(b >> 4)];
        out[pos + 1] = HEX[usize::from(b & 0x0f)];
        pos += 2;
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl FromStr for BindingId {
    type Err = ParseBindingIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.as_bytes();
        if s.len() != 36 || DASHES.iter().any(|&i| s[i] != b'-') {
            return Err(ParseBindingIdError);
        }
        let mut bytes = [0u8; 16];
        let mut digits = s
            .iter()
            .enumerate()
            .filter(|(i, _)| !DASHES.contains(i))
            .map(|(_, &c)| hex_value(c));
        for byte in &mut bytes {
            let hi = digits.next().flatten().ok_or(ParseBindingIdError)?;
            let lo = digits.next().flatten().ok_or(ParseBindingIdError)?;
            *byte = hi << 4 | lo;
        }
        BindingId::from_bytes(bytes).ok_or(ParseBindingIdError)
    }
}

impl serde::Serialize for BindingId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A subscriber: one stream of events for one binding.
///
/// Assigned by the engine in increasing order and never reused, so a late
/// report about a subscriber that is already gone cannot hit a newer one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriberId(pub u64);

impl fmt::Display for SubscriberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sub-{}", self.0)
    }
}

/// A caller-chosen id that ties a reply to its command.
///
/// The engine echoes it in [`crate::Action::Reply`]; replies may come later than
/// the command (bind waits for the socket, send for the transmit outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A per-binding datagram sequence number; the first datagram of a binding is 1.
///
/// It is the SSE event id, so a client resumes with `Last-Event-ID: <seq>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Seq(pub u64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A string that is not a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a sequence number (expected a decimal integer)")]
pub struct ParseSeqError;

impl FromStr for Seq {
    type Err = ParseSeqError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // u64::from_str accepts a leading '+'; an event id never has one.
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseSeqError);
        }
        s.parse().map(Seq).map_err(|_| ParseSeqError)
    }
}

/// A fast, deterministic hasher for the engine's id-keyed maps.
///
/// Safe against hash flooding here because no key is chosen by a network client:
/// binding ids are random, subscriber ids are assigned by the engine and request
/// ids by the embedding runtime. Fixed, so lookups never depend on process state.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(26) ^ n).wrapping_mul(K);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A hash map keyed by an id.
pub(crate) type IdMap<K, V> = hashbrown::HashMap<K, V, std::hash::BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha12Rng;
    use rand_core::SeedableRng;

    #[test]
    fn binding_id_round_trips_through_its_string_form() {
        let mut rng = ChaCha12Rng::from_seed([7; 32]);
        for _ in 0..100 {
            let id = BindingId::generate(&mut rng);
            let s = id.to_string();
            assert_eq!(s.len(), 36);
            assert_eq!(s.as_bytes()[14], b'4', "version nibble");
            assert_eq!(s.parse::<BindingId>(), Ok(id));
            assert_eq!(s.to_uppercase().parse::<BindingId>(), Ok(id));
        }
    }

    #[test]
    fn binding_id_rejects_other_strings() {
        for bad in [
            "",
            "abc",
            "1b4e28ba-2fa1-41d2-883f-0016d3cca42",
            "1b4e28ba-2fa1-41d2-883f-0016d3cca4277",
            "1b4e28ba2fa1-41d2-883f-0016d3cca4277",
            "1b4e28ba-2fa1-11d2-883f-0016d3cca427", // version 1
            "1b4e28ba-2fa1-41d2-c83f-0016d3cca427", // wrong variant
            "1b4e28ba-2fa1-41d2-883f-0016d3cca42g",
            "1b4e28ba-2fa1-41d2-883f-0016d3cca4é",
            "../../etc/passwd-xxxxxxxxxxxxxxxxxxx",
        ] {
            assert_eq!(
                bad.parse::<BindingId>(),
                Err(ParseBindingIdError),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn seq_parses_decimal_only() {
        assert_eq!("42".parse::<Seq>(), Ok(Seq(42)));
        assert_eq!(" 7 ".parse::<Seq>(), Ok(Seq(7)));
        for bad in ["", "+1", "-1", "1.0", "0x10", "99999999999999999999999"] {
            assert_eq!(bad.parse::<Seq>(), Err(ParseSeqError), "{bad:?}");
        }
    }
}
