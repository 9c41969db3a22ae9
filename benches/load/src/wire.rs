//! A minimal HTTP/1.1 client for the request loops (`POST /send`, bind +
//! unbind): prebuilt request bytes out, one `Content-Length` response in.
//!
//! The loops measure the server; on a 2-core machine the client shares the
//! CPU with it, so the client does as little as it can: no header map, no
//! per-request allocation beyond the read buffer.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::LoadError;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// A request as bytes on the wire.
pub fn request(method: &str, path: &str, host: SocketAddr, body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\n").into_bytes();
    if let Some(body) = body {
        out.extend_from_slice(
            format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// One keep-alive connection.
pub struct WireClient {
    stream: TcpStream,
    /// The server's address (what a request's `Host` names).
    server: SocketAddr,
    buf: Vec<u8>,
    /// Bytes of `buf` that belong to the previous response.
    used: usize,
}

impl WireClient {
    /// Connects with `TCP_NODELAY`.
    pub async fn connect(addr: SocketAddr) -> Result<Self, LoadError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(WireClient {
            stream,
            server: addr,
            buf: Vec::with_capacity(4096),
            used: 0,
        })
    }

    /// The server's address.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Sends `request` and reads the response: its status and body.
    pub async fn call(&mut self, request: &[u8]) -> Result<(u16, &[u8]), LoadError> {
        self.buf.drain(..self.used);
        self.used = 0;
        self.stream.write_all(request).await?;
        let (head_len, status, body_len) = loop {
            if let Some(head) = parse_head(&self.buf)? {
                break head;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(LoadError::reply("response", "head too large"));
            }
            self.fill().await?;
        };
        while self.buf.len() < head_len + body_len {
            self.fill().await?;
        }
        self.used = head_len + body_len;
        Ok((status, &self.buf[head_len..self.used]))
    }

    async fn fill(&mut self) -> Result<(), LoadError> {
        self.buf.reserve(4096);
        match self.stream.read_buf(&mut self.buf).await? {
            0 => Err(LoadError::reply("response", "connection closed")),
            _ => Ok(()),
        }
    }
}

/// Parses a response head: (head length, status, content length), or `None`
/// while the head is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<(usize, u16, usize)>, LoadError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|e| LoadError::reply("response", e))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| LoadError::reply("response", "no status line"))?;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(LoadError::reply(
                "response",
                "chunked responses are not supported here",
            ));
        }
    }
    let length = length.ok_or_else(|| LoadError::reply("response", "no content-length"))?;
    Ok(Some((end + 4, status, length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_parsed_once_complete() {
        let response = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\ncontent-type: application/json\r\n\r\n{\"sent\":64}";
        assert!(parse_head(&response[..20]).unwrap().is_none());
        let (head, status, length) = parse_head(response).unwrap().unwrap();
        assert_eq!((status, length), (200, 11));
        assert_eq!(&response[head..head + length], b"{\"sent\":64}");
    }

    #[test]
    fn a_request_carries_its_body_length() {
        let host = SocketAddr::from(([127, 0, 0, 1], 80));
        let bytes = request("POST", "/v1/udp/bind", host, Some(b"{}"));
        assert_eq!(
            bytes,
            b"POST /v1/udp/bind HTTP/1.1\r\nhost: 127.0.0.1:80\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
        );
    }
}
