//! A server-sent events parser for the events both servers send: `datagram`
//! (koi-udp's data fields), and Porthole's `lagged` and `closed`.

use crate::probe::{self, Probe};

/// An event that matters to the benchmark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// A datagram whose payload is a probe.
    Probe(Probe),
    /// A datagram whose payload is not a probe.
    Other,
    /// Porthole could not deliver `missed` datagrams.
    Lagged {
        /// How many.
        missed: u64,
    },
    /// Porthole ended the stream.
    Closed {
        /// Why (`expired`, `unbound`, `shutdown`).
        reason: String,
    },
}

/// Splits a byte stream into events, whatever the chunk boundaries.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    /// Where the unparsed bytes start.
    consumed: usize,
}

impl SseParser {
    /// Feeds `chunk` and hands every complete event to `on_event`.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent)) {
        self.buffer.extend_from_slice(chunk);
        while let Some(end) = find(&self.buffer[self.consumed..], b"\n\n") {
            let block = &self.buffer[self.consumed..self.consumed + end];
            if let Some(event) = parse_block(block) {
                on_event(event);
            }
            self.consumed += end + 2;
        }
        if self.consumed == self.buffer.len() {
            self.buffer.clear();
            self.consumed = 0;
        } else if self.consumed > 64 * 1024 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// One event block (lines without the blank line that ends it).
fn parse_block(block: &[u8]) -> Option<SseEvent> {
    let mut name: &[u8] = b"message";
    let mut data: &[u8] = b"";
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = line.strip_prefix(b"event:") {
            name = value.strip_prefix(b" ").unwrap_or(value);
        } else if let Some(value) = line.strip_prefix(b"data:") {
            data = value.strip_prefix(b" ").unwrap_or(value);
        }
    }
    match name {
        b"datagram" => Some(
            string_field(data, b"\"payload\":\"")
                .and_then(probe::read_base64)
                .map_or(SseEvent::Other, SseEvent::Probe),
        ),
        b"lagged" => {
            let digits = number_field(data, b"\"missed\":")?;
            let missed = std::str::from_utf8(digits).ok()?.parse().ok()?;
            Some(SseEvent::Lagged { missed })
        }
        b"closed" => {
            let reason = string_field(data, b"\"reason\":\"").unwrap_or(b"");
            Some(SseEvent::Closed {
                reason: String::from_utf8_lossy(reason).into_owned(),
            })
        }
        _ => None,
    }
}

/// The characters of a JSON string field up to its closing quote (the fields
/// read here hold base64 or a word, never an escape).
fn string_field<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = find(json, key)? + key.len();
    let rest = &json[start..];
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

fn number_field<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = find(json, key)? + key.len();
    let rest = &json[start..];
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn datagram_event(probe: Probe) -> String {
        let mut payload = vec![0u8; 64];
        probe::write(&mut payload, probe);
        let payload = base64::engine::general_purpose::STANDARD.encode(payload);
        format!(
            "event: datagram\nid: 7\ndata: {{\"binding_id\":\"x\",\"src\":\"127.0.0.1:9\",\
             \"payload\":\"{payload}\",\"received_at\":\"2025-01-01T00:00:00Z\"}}\n\n"
        )
    }

    #[test]
    fn events_split_across_chunks_are_parsed_once_each() {
        let first = Probe { seq: 1, sent_ns: 5 };
        let second = Probe { seq: 2, sent_ns: 6 };
        let stream = format!(
            ": keep-alive\n\n{}event: lagged\ndata: {{\"missed\":12}}\n\n{}\
             event: closed\ndata: {{\"reason\":\"expired\"}}\n\n",
            datagram_event(first),
            datagram_event(second)
        );
        for chunk_size in [1, 3, 17, stream.len()] {
            let mut parser = SseParser::default();
            let mut events = Vec::new();
            for chunk in stream.as_bytes().chunks(chunk_size) {
                parser.feed(chunk, |e| events.push(e));
            }
            assert_eq!(
                events,
                vec![
                    SseEvent::Probe(first),
                    SseEvent::Lagged { missed: 12 },
                    SseEvent::Probe(second),
                    SseEvent::Closed {
                        reason: "expired".into()
                    },
                ],
                "chunks of {chunk_size}"
            );
        }
    }
}
