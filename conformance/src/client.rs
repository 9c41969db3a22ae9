//! A small blocking HTTP/1.1 client over `std::net::TcpStream` or
//! `std::os::unix::net::UnixStream`, with chunked decoding and a
//! server-sent-events reader.
//!
//! Hand-written rather than a client crate so that the suite controls every
//! byte (malformed requests, half-sent bodies, abrupt disconnects) and depends
//! on no async runtime. Every read is bounded by a timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::openapi::Document;

/// How long any single read may wait before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket.
    Unix(PathBuf),
}

/// A connection to a [`Target`].
#[derive(Debug)]
pub enum Conn {
    /// Over TCP.
    Tcp(TcpStream),
    /// Over a Unix domain socket.
    Unix(UnixStream),
}

impl Conn {
    /// Connects, with every read and write bounded by [`READ_TIMEOUT`].
    pub fn connect(target: &Target) -> io::Result<Self> {
        let conn = match target {
            Target::Tcp(addr) => {
                let stream = TcpStream::connect_timeout(addr, READ_TIMEOUT)?;
                stream.set_nodelay(true)?;
                Conn::Tcp(stream)
            }
            Target::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
        };
        conn.set_read_timeout(Some(READ_TIMEOUT))?;
        match &conn {
            Conn::Tcp(s) => s.set_write_timeout(Some(READ_TIMEOUT))?,
            Conn::Unix(s) => s.set_write_timeout(Some(READ_TIMEOUT))?,
        }
        Ok(conn)
    }

    /// Bounds each read.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.set_read_timeout(timeout),
            Conn::Unix(s) => s.set_read_timeout(timeout),
        }
    }

    /// Shuts the connection down.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.shutdown(how),
            Conn::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// A client for one server. Each request uses its own connection
/// (`Connection: close`). Every response it receives is checked against the
/// server's `GET /openapi.json` ([`Document`]), fetched on first use.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
    headers: Vec<(String, String)>,
    /// Shared by clones: one server, one document.
    openapi: Arc<OnceLock<Arc<Document>>>,
}

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The decoded body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// If the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Asserts the status and a JSON error body with `code`; returns the message.
    ///
    /// # Panics
    ///
    /// If the response is anything else.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        let json = self.json();
        assert_eq!(
            (self.status, json["error"].as_str()),
            (status, Some(code)),
            "unexpected response: {json}"
        );
        assert_eq!(self.header("content-type"), Some("application/json"));
        let message = json["message"].as_str().unwrap_or_default().to_owned();
        assert!(!message.is_empty(), "error without a message: {json}");
        message
    }

    /// Asserts the status; returns the JSON body.
    ///
    /// # Panics
    ///
    /// If the status differs or the body is not JSON.
    #[track_caller]
    pub fn expect(&self, status: u16) -> serde_json::Value {
        let json = self.json();
        assert_eq!(self.status, status, "unexpected response: {json}");
        json
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

impl Client {
    /// A client for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Client::at(Target::Tcp(addr))
    }

    /// A client for the server at `target`.
    pub fn at(target: Target) -> Self {
        Client {
            target,
            headers: Vec::new(),
            openapi: Arc::default(),
        }
    }

    /// The server's OpenAPI document, fetched (without this client's
    /// headers) the first time.
    ///
    /// # Panics
    ///
    /// If the server does not serve one.
    pub fn openapi(&self) -> Arc<Document> {
        let doc = self.openapi.get_or_init(|| {
            let raw = format!(
                "GET /openapi.json HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.host()
            );
            let mut wire = Wire::connect(&self.target).expect("connect to fetch /openapi.json");
            wire.stream
                .write_all(raw.as_bytes())
                .expect("send GET /openapi.json");
            let response = wire.read_response().expect("GET /openapi.json");
            assert_eq!(
                (response.status, response.header("content-type")),
                (200, Some("application/json")),
                "GET /openapi.json"
            );
            let doc = Document::parse(&response.body);
            doc.check("GET", "/openapi.json", &response);
            Arc::new(doc)
        });
        Arc::clone(doc)
    }

    /// Checks `response` to `method path` against the document.
    #[track_caller]
    fn checked(&self, method: &str, path: &str, response: Response) -> Response {
        self.openapi().check(method, path, &response);
        response
    }

    /// The same client, sending `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Where the server listens.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// A new connection to the server, to write raw bytes on.
    pub fn connect(&self) -> io::Result<Conn> {
        Conn::connect(&self.target)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &str) -> Response {
        self.request("POST", path, &[], Some(body.as_bytes()))
    }

    /// `PUT path` with a body (empty: none).
    pub fn put(&self, path: &str, body: &str) -> Response {
        let body = (!body.is_empty()).then_some(body.as_bytes());
        self.request("PUT", path, &[], body)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Response {
        self.request("DELETE", path, &[], None)
    }

    /// Any request.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached or does not answer in time.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        let mut head = self.head(method, path, headers);
        if let Some(body) = body {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        } else if method == "POST" || method == "PUT" {
            head.push_str("Content-Length: 0\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        if method == "HEAD" {
            // The answer to a HEAD announces a length but carries no body.
            let mut wire = Wire::connect(&self.target).expect("connect to the server");
            wire.stream.write_all(&bytes).expect("send the request");
            let (status, headers) = wire.read_head().expect("response head");
            // `Connection: close`: whatever comes before the end is a body it must not have.
            while wire.fill().expect("read to the end") > 0 {}
            let response = Response {
                status,
                headers,
                body: std::mem::take(&mut wire.buf),
            };
            return self.checked(method, path, response);
        }
        self.exchange(&bytes)
    }

    /// The request line and headers (without the final empty line).
    pub fn head(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
        let host = self.host();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (name, value) in self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(headers.iter().copied())
        {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head
    }

    /// The `Host` header for the target.
    fn host(&self) -> String {
        match &self.target {
            Target::Tcp(addr) => addr.to_string(),
            Target::Unix(_) => "localhost".to_owned(),
        }
    }

    /// Writes `raw` as is (ignoring a server that stops reading early) and
    /// reads the response, checked against the document when `raw` starts
    /// with a request line.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached or does not answer in time.
    pub fn exchange(&self, raw: &[u8]) -> Response {
        let mut wire = Wire::connect(&self.target).expect("connect to the server");
        // A server that answers before reading the whole body (413) may close
        // early; its answer is still there to read.
        let _ = wire.stream.write_all(raw);
        let response = wire
            .read_response()
            .unwrap_or_else(|e| panic!("no response to {:?}: {e}", first_line(raw)));
        match request_line(raw) {
            Some((method, path)) => self.checked(&method, &path, response),
            None => response,
        }
    }

    /// Opens `GET path` as an event stream.
    ///
    /// # Panics
    ///
    /// If the server does not answer in time.
    pub fn stream(&self, path: &str, headers: &[(&str, &str)]) -> Result<EventStream, Response> {
        let mut head = self.head("GET", path, headers);
        head.push_str("Accept: text/event-stream\r\n\r\n");
        let mut wire = Wire::connect(&self.target).expect("connect to the server");
        wire.stream
            .write_all(head.as_bytes())
            .expect("send the request");
        let (status, headers) = wire.read_head().expect("response head");
        let openapi = self.openapi();
        if status != 200 {
            let body = wire.read_body(&headers).expect("error body");
            return Err(self.checked(
                "GET",
                path,
                Response {
                    status,
                    headers,
                    body,
                },
            ));
        }
        // The head alone (status and media type): the body is checked event by event.
        let head = Response {
            status,
            headers: headers.clone(),
            body: Vec::new(),
        };
        openapi.check("GET", path, &head);
        assert_eq!(
            header(&headers, "transfer-encoding"),
            Some("chunked"),
            "an event stream is chunked"
        );
        Ok(EventStream {
            wire,
            headers,
            chunks: Chunked::default(),
            text: Vec::new(),
            ended: false,
            openapi,
        })
    }
}

/// A connection on which the test writes requests piecemeal and reads the
/// responses as they come (interim `100 Continue` ones too).
#[derive(Debug)]
pub struct RawExchange {
    wire: Wire,
    /// Its request line's method and path, to check responses against the document.
    request: Option<(String, String)>,
    openapi: Arc<Document>,
}

impl RawExchange {
    /// Writes more of the request.
    ///
    /// # Panics
    ///
    /// If the server closed the connection.
    pub fn send(&mut self, bytes: &[u8]) {
        self.wire
            .stream
            .write_all(bytes)
            .expect("write the request");
    }

    /// The next response (interim or final), checked against the document.
    pub fn response(&mut self) -> io::Result<Response> {
        let response = self.wire.read_response()?;
        if let Some((method, path)) = &self.request {
            self.openapi.check(method, path, &response);
        }
        Ok(response)
    }
}

impl Client {
    /// Opens a connection and writes `raw` on it, leaving the rest to the test.
    ///
    /// # Panics
    ///
    /// If the server cannot be reached.
    pub fn begin(&self, raw: &[u8]) -> RawExchange {
        let openapi = self.openapi();
        let mut wire = Wire::connect(&self.target).expect("connect to the server");
        wire.stream.write_all(raw).expect("write the request");
        RawExchange {
            wire,
            request: request_line(raw),
            openapi,
        }
    }
}

/// The method and path of `raw`'s request line, if it has one.
fn request_line(raw: &[u8]) -> Option<(String, String)> {
    let line = first_line(raw);
    let mut words = line.split(' ');
    match (words.next(), words.next()) {
        (Some(method), Some(path)) if path.starts_with('/') => {
            Some((method.to_owned(), path.to_owned()))
        }
        _ => None,
    }
}

fn first_line(raw: &[u8]) -> String {
    let end = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(raw.len().min(80));
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// A connection and the bytes read from it but not yet parsed.
struct Wire {
    stream: Conn,
    buf: Vec<u8>,
    eof: bool,
}

impl Wire {
    fn connect(target: &Target) -> io::Result<Self> {
        let stream = Conn::connect(target)?;
        Ok(Wire {
            stream,
            buf: Vec::new(),
            eof: false,
        })
    }

    /// Reads more bytes; `Ok(0)` at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let n = match self.stream.read(&mut chunk) {
            Ok(n) => n,
            // The server reset the connection after answering: what was read stands.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            self.eof = true;
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    fn take_line(&mut self) -> Option<Vec<u8>> {
        let end = self.buf.windows(2).position(|w| w == b"\r\n")?;
        let line = self.buf[..end].to_vec();
        self.buf.drain(..end + 2);
        Some(line)
    }

    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(line);
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
        }
    }

    fn read_head(&mut self) -> io::Result<(u16, Vec<(String, String)>)> {
        let status_line = String::from_utf8_lossy(&self.read_line()?).into_owned();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, status_line.clone()))?;
        let mut headers = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok((status, headers));
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
    }

    fn read_body(&mut self, headers: &[(String, String)]) -> io::Result<Vec<u8>> {
        if header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut chunks = Chunked::default();
            let mut body = Vec::new();
            while !chunks.done {
                chunks.decode(&mut self.buf, &mut body)?;
                if !chunks.done && self.fill()? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body cut short",
                    ));
                }
            }
            return Ok(body);
        }
        if let Some(len) = header(headers, "content-length").and_then(|v| v.parse::<usize>().ok()) {
            while self.buf.len() < len {
                if self.fill()? == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body cut short",
                    ));
                }
            }
            return Ok(self.buf.drain(..len).collect());
        }
        while self.fill()? > 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    fn read_response(&mut self) -> io::Result<Response> {
        let (status, headers) = self.read_head()?;
        if (100..200).contains(&status) {
            // An interim response (100 Continue) has no body; the final one follows.
            return Ok(Response {
                status,
                headers,
                body: Vec::new(),
            });
        }
        let body = self.read_body(&headers)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Incremental chunked transfer decoding.
#[derive(Debug, Default)]
struct Chunked {
    /// Bytes left in the current chunk, then its CRLF.
    remaining: Option<usize>,
    done: bool,
}

impl Chunked {
    /// Decodes what `raw` holds into `out`, leaving an incomplete tail in `raw`.
    fn decode(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> io::Result<()> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        loop {
            if self.done {
                return Ok(());
            }
            match self.remaining {
                None => {
                    let Some(end) = raw.windows(2).position(|w| w == b"\r\n") else {
                        return Ok(());
                    };
                    let line = String::from_utf8_lossy(&raw[..end]).into_owned();
                    let size = line.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
                    raw.drain(..end + 2);
                    if size == 0 {
                        // Trailers are not used by the server; the final CRLF may follow.
                        self.done = true;
                        return Ok(());
                    }
                    self.remaining = Some(size);
                }
                Some(0) => {
                    if raw.len() < 2 {
                        return Ok(());
                    }
                    if &raw[..2] != b"\r\n" {
                        return Err(bad("chunk without CRLF"));
                    }
                    raw.drain(..2);
                    self.remaining = None;
                }
                Some(n) => {
                    if raw.is_empty() {
                        return Ok(());
                    }
                    let take = n.min(raw.len());
                    out.extend(raw.drain(..take));
                    self.remaining = Some(n - take);
                }
            }
        }
    }
}

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sse {
    /// An event.
    Event(SseEvent),
    /// A comment block (a keep-alive).
    Comment(String),
}

/// A server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` (empty if absent).
    pub event: String,
    /// `id:`, if present.
    pub id: Option<String>,
    /// `data:` lines joined with newlines.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON.
    ///
    /// # Panics
    ///
    /// If it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {:?}", self.data))
    }

    /// The sequence number in `id:`.
    ///
    /// # Panics
    ///
    /// If there is none.
    pub fn seq(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("event without a numeric id: {self:?}"))
    }
}

/// An open `text/event-stream` response.
#[derive(Debug)]
pub struct EventStream {
    wire: Wire,
    headers: Vec<(String, String)>,
    chunks: Chunked,
    /// Decoded body not yet split into events.
    text: Vec<u8>,
    ended: bool,
    /// Each event's data is checked against it.
    openapi: Arc<Document>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire")
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl EventStream {
    /// The first value of response header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The next event (comments skipped); `None` once the stream ended.
    ///
    /// # Panics
    ///
    /// If nothing arrives within [`READ_TIMEOUT`].
    #[track_caller]
    pub fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            match self.next_within(READ_TIMEOUT) {
                Ok(Some(Sse::Event(event))) => return Some(event),
                Ok(Some(Sse::Comment(_))) => continue,
                Ok(None) => return None,
                Err(e) => panic!("no event within {READ_TIMEOUT:?}: {e}"),
            }
        }
    }

    /// The next event, which must be `event: <kind>`.
    ///
    /// # Panics
    ///
    /// If the stream ends, times out, or the event is another kind.
    #[track_caller]
    pub fn expect_event(&mut self, kind: &str) -> SseEvent {
        match self.next_event() {
            Some(event) if event.event == kind => event,
            other => panic!("expected event {kind:?}, got {other:?}"),
        }
    }

    /// The next event or comment within `timeout`: `Ok(None)` once the stream
    /// ended, `Err` (`WouldBlock` or `TimedOut`) if nothing complete arrived.
    pub fn next_within(&mut self, timeout: Duration) -> io::Result<Option<Sse>> {
        let deadline = Instant::now() + timeout;
        loop {
            // The head's read may have brought the first chunks along.
            self.chunks.decode(&mut self.wire.buf, &mut self.text)?;
            if let Some(item) = self.take_item() {
                return Ok(Some(item));
            }
            if self.chunks.done {
                self.ended = true;
            }
            if self.ended {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no event in time"));
            }
            self.wire.stream.set_read_timeout(Some(left))?;
            let n = self.wire.fill();
            self.wire.stream.set_read_timeout(Some(READ_TIMEOUT))?;
            if n? == 0 {
                self.ended = true;
            }
        }
    }

    /// Closes the connection abruptly, as a client that goes away.
    pub fn disconnect(self) {
        let _ = self.wire.stream.shutdown(Shutdown::Both);
    }

    /// The raw connection, e.g. to stop reading it.
    pub fn connection(&self) -> &Conn {
        &self.wire.stream
    }

    fn take_item(&mut self) -> Option<Sse> {
        let end = self.text.windows(2).position(|w| w == b"\n\n")?;
        let block = String::from_utf8_lossy(&self.text[..end]).into_owned();
        self.text.drain(..end + 2);
        let mut event = SseEvent {
            event: String::new(),
            id: None,
            data: String::new(),
        };
        let mut fields = 0;
        let mut comment = String::new();
        for line in block.lines() {
            if let Some(text) = line.strip_prefix(':') {
                comment.push_str(text.trim());
                continue;
            }
            fields += 1;
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match name {
                "event" => event.event = value.to_owned(),
                "id" => event.id = Some(value.to_owned()),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
        Some(if fields == 0 {
            Sse::Comment(comment)
        } else {
            self.openapi.check_event(&event);
            Sse::Event(event)
        })
    }
}
