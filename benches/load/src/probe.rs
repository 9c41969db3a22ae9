//! The datagrams the benchmark sends: a sequence number and the send time,
//! padded to the size under test, and the clock both ends read.

use std::sync::OnceLock;
use std::time::Instant;

use base64::Engine as _;

/// Bytes of a probe's header: sequence number, then send time (both little endian).
pub const HEADER: usize = 16;

/// Base64 characters that hold the header (24 characters encode 18 bytes).
const HEADER_BASE64: usize = 24;

/// One probe as read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Per-sender sequence number.
    pub seq: u64,
    /// [`now_ns`] when it was sent.
    pub sent_ns: u64,
}

/// Nanoseconds since the process first asked. Sender and receiver live in the
/// same (benchmark) process, so their readings compare directly.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let nanos = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// Writes a probe's header at the start of `datagram` (at least [`HEADER`] bytes).
pub fn write(datagram: &mut [u8], probe: Probe) {
    datagram[..8].copy_from_slice(&probe.seq.to_le_bytes());
    datagram[8..HEADER].copy_from_slice(&probe.sent_ns.to_le_bytes());
}

/// Reads a probe from a datagram's bytes.
pub fn read(datagram: &[u8]) -> Option<Probe> {
    let seq = datagram.get(..8)?.try_into().ok()?;
    let sent = datagram.get(8..HEADER)?.try_into().ok()?;
    Some(Probe {
        seq: u64::from_le_bytes(seq),
        sent_ns: u64::from_le_bytes(sent),
    })
}

/// Reads a probe from the start of a datagram's standard base64, decoding only
/// the characters that hold the header.
pub fn read_base64(encoded: &[u8]) -> Option<Probe> {
    let head = encoded.get(..HEADER_BASE64)?;
    let mut bytes = [0u8; 18];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(head, &mut bytes)
        .ok()?;
    read(&bytes[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_survives_base64_of_any_benchmark_size() {
        for size in [HEADER + 2, 64, 1200] {
            let mut datagram = vec![0xA5; size];
            let probe = Probe {
                seq: 0x0102_0304_0506_0708,
                sent_ns: u64::MAX - 3,
            };
            write(&mut datagram, probe);
            let encoded = base64::engine::general_purpose::STANDARD.encode(&datagram);
            assert_eq!(read_base64(encoded.as_bytes()), Some(probe), "size {size}");
            assert_eq!(read(&datagram), Some(probe));
        }
    }

    #[test]
    fn short_or_garbled_payloads_are_not_probes() {
        assert_eq!(read(&[1, 2, 3]), None);
        assert_eq!(read_base64(b"AAAA"), None);
        assert_eq!(read_base64(b"!!!!!!!!!!!!!!!!!!!!!!!!!!!!"), None);
    }
}
