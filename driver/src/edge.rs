//! The web boundary: which pages (`Origin`) and which names (`Host`) may talk
//! to the daemon, and the CORS headers that let the allowed pages read answers.
//!
//! A daemon on loopback is reachable by every page the host's browser opens.
//! Browsers send `Origin` on every cross-origin request that can change
//! something (including "simple" `text/plain` POSTs that need no preflight),
//! so refusing unknown origins before anything runs stops cross-site requests.
//! DNS rebinding makes an attacker's name resolve to 127.0.0.1, so the page
//! is same-origin with the daemon; its requests then carry the attacker's
//! name in `Host`, which an IP literal or `localhost` never is.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hyper::header::{HeaderMap, HeaderValue};

/// Methods the API answers, as a preflight lists them.
pub(crate) const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS";
/// Request headers a page may send: the token (both spellings), JSON bodies
/// and SSE resume.
pub(crate) const ALLOW_HEADERS: &str = "Authorization, Content-Type, Last-Event-ID, X-Koi-Token";
/// How long a browser may cache a preflight answer, in seconds.
pub(crate) const PREFLIGHT_MAX_AGE: &str = "600";

/// A web origin, `scheme://host[:port]`, compared exactly (scheme and host
/// case-insensitively, as browsers serialise them in lowercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin(String);

/// A string that is not an origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an origin (expected scheme://host[:port] without a path, e.g. http://localhost:3000): {0:?}")]
pub struct ParseOriginError(String);

impl FromStr for Origin {
    type Err = ParseOriginError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseOriginError(s.to_owned());
        // `null` is what sandboxed frames and file:// pages send; only an
        // explicit listing allows it.
        if s == "null" {
            return Ok(Origin(s.to_owned()));
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(err)?;
        let scheme_ok = !scheme.is_empty()
            && scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
        if !scheme_ok || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(err());
        }
        split_port(rest).ok_or_else(err)?;
        Ok(Origin(s.to_ascii_lowercase()))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which origins may use the API from a browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// Pages served from this host's loopback: `http(s)://localhost`,
    /// `127.0.0.1` or `[::1]`, on any port (the default, as koi-udp does).
    #[default]
    Loopback,
    /// Exactly these origins.
    List(Vec<Origin>),
}

impl AllowedOrigins {
    /// Whether a request carrying `Origin: origin` may be served.
    pub fn allows(&self, origin: &[u8]) -> bool {
        let Ok(origin) = std::str::from_utf8(origin) else {
            return false;
        };
        match self {
            AllowedOrigins::Loopback => is_loopback_origin(origin),
            AllowedOrigins::List(list) => list.iter().any(|o| o.0.eq_ignore_ascii_case(origin)),
        }
    }
}

/// `http(s)://` and a loopback host, matched exactly: `http://localhost.evil.com`
/// is not loopback.
fn is_loopback_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    match split_port(rest) {
        Some(host) => {
            host == "localhost" || host == "127.0.0.1" || host.eq_ignore_ascii_case("[::1]")
        }
        None => false,
    }
}

/// The host part of `host[:port]` (brackets kept for IPv6), if the port, when
/// present, is a number.
fn split_port(authority: &str) -> Option<&str> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')? + 1;
        let (host, rest) = authority.split_at(end);
        match rest {
            "" => (host, None),
            _ => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()));
    (port_ok && !host.is_empty()).then_some(host)
}

/// Whether a `Host` header names this daemon in a way DNS rebinding cannot
/// forge: an IP literal, `localhost`, or one of the `allowed` names.
pub(crate) fn host_allowed(host: &[u8], allowed: &[String]) -> bool {
    let Some(name) = std::str::from_utf8(host).ok().and_then(split_port) else {
        return false;
    };
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok();
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    name.parse::<Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Adds the CORS headers for an allowed `origin` to a response.
pub(crate) fn allow_origin(headers: &mut HeaderMap, origin: &HeaderValue) {
    headers.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
}

/// Adds the headers of a preflight answer for an allowed origin.
pub(crate) fn preflight(headers: &mut HeaderMap, request: &HeaderMap) {
    use hyper::header::{
        ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_MAX_AGE,
    };
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    headers.insert(
        ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    // Chrome's Private Network Access asks before a public page may reach
    // loopback; an origin allowed here may.
    if request
        .get("access-control-request-private-network")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    {
        headers.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_are_allowed_by_default_and_lookalikes_are_not() {
        let default = AllowedOrigins::default();
        for ok in [
            "http://localhost",
            "http://localhost:3000",
            "https://127.0.0.1:8443",
            "http://[::1]:8080",
            "http://127.0.0.1",
        ] {
            assert!(default.allows(ok.as_bytes()), "{ok}");
        }
        for refused in [
            "http://localhost.evil.com",
            "http://evil.com",
            "http://127.0.0.1.nip.io",
            "http://localhost:3000/path",
            "http://localhost:x",
            "http://[::2]:80",
            "file://localhost",
            "null",
            "",
        ] {
            assert!(!default.allows(refused.as_bytes()), "{refused}");
        }
    }

    #[test]
    fn a_configured_list_allows_exactly_its_origins() {
        let list = AllowedOrigins::List(vec![
            "https://app.example.com".parse().unwrap(),
            "http://localhost:5173".parse().unwrap(),
        ]);
        assert!(list.allows(b"https://app.example.com"));
        assert!(list.allows(b"HTTPS://APP.EXAMPLE.COM"));
        assert!(list.allows(b"http://localhost:5173"));
        assert!(
            !list.allows(b"http://localhost:5174"),
            "not loopback by default any more"
        );
        assert!(!list.allows(b"https://app.example.com:444"));
    }

    #[test]
    fn origins_parse_without_paths() {
        assert!("http://localhost:3000".parse::<Origin>().is_ok());
        assert!("null".parse::<Origin>().is_ok());
        for bad in ["localhost:3000", "http://", "http://a/b", "http://a:b", "*"] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_that_dns_rebinding_cannot_forge_are_allowed() {
        let extra = vec!["porthole.internal".to_owned()];
        for ok in [
            "127.0.0.1:7447",
            "127.0.0.1",
            "[::1]:7447",
            "[::1]",
            "localhost:7447",
            "LOCALHOST",
            "localhost.",
            "10.1.2.3:80",
            "porthole.internal:7447",
        ] {
            assert!(host_allowed(ok.as_bytes(), &extra), "{ok}");
        }
        for refused in [
            "evil.com",
            "evil.com:7447",
            "localhost.evil.com",
            "127.0.0.1.nip.io:7447",
            "[nope]:1",
            "localhost:port",
            "",
        ] {
            assert!(!host_allowed(refused.as_bytes(), &extra), "{refused}");
        }
    }
}
