//! The HTTP front end's own settings (the engine's are [`porthole_core::Config`]),
//! validated where they are built so an embedder gets the same checks as the CLI.

use std::time::Duration;

use crate::edge::AllowedOrigins;
use crate::token::Token;

/// How the HTTP API is served. [`HttpConfig::default()`] is safe for a
/// daemon on a shared host: loopback pages only, IP-literal or `localhost` hosts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// Token every `/v1` route requires, if any. Default none.
    pub token: Option<Token>,
    /// Largest request body read. Default 1 MiB. Beyond: `413 body_too_large`.
    pub max_request_body: usize,
    /// Time between keep-alive comments on a quiet stream. Default 15 s.
    pub keep_alive: Duration,
    /// Pages that may use the API from a browser. Default: loopback origins.
    /// A request with any other `Origin` gets `403 origin_not_allowed`.
    pub allowed_origins: AllowedOrigins,
    /// Names besides IP literals and `localhost` that the `Host` header may
    /// carry. Default none. Any other gets `403 host_not_allowed`.
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            token: None,
            max_request_body: 1024 * 1024,
            keep_alive: Duration::from_secs(15),
            allowed_origins: AllowedOrigins::default(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// An HTTP configuration the server refuses to run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpConfigError {
    /// `keep_alive` is shorter than a millisecond: a quiet stream would be
    /// flooded with keep-alive comments.
    #[error("keep_alive must be at least 1 ms")]
    ZeroKeepAlive,
    /// `max_request_body` is 0: no bind or send could be read.
    #[error("max_request_body must be at least 1 byte")]
    ZeroMaxBody,
    /// An allowed host is empty or not a DNS name.
    #[error("allowed host {0:?} is not a DNS name")]
    BadHost(String),
}

impl HttpConfig {
    /// Checks that the settings make sense.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        if self.keep_alive < Duration::from_millis(1) {
            return Err(HttpConfigError::ZeroKeepAlive);
        }
        if self.max_request_body == 0 {
            return Err(HttpConfigError::ZeroMaxBody);
        }
        if let Some(bad) = self.allowed_hosts.iter().find(|h| !is_dns_name(h)) {
            return Err(HttpConfigError::BadHost(bad.clone()));
        }
        Ok(())
    }
}

fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_nonsense_is_refused() {
        assert_eq!(HttpConfig::default().validate(), Ok(()));
        let zero_keep_alive = HttpConfig {
            keep_alive: Duration::ZERO,
            ..HttpConfig::default()
        };
        assert_eq!(
            zero_keep_alive.validate(),
            Err(HttpConfigError::ZeroKeepAlive)
        );
        let zero_body = HttpConfig {
            max_request_body: 0,
            ..HttpConfig::default()
        };
        assert_eq!(zero_body.validate(), Err(HttpConfigError::ZeroMaxBody));
        let bad_host = HttpConfig {
            allowed_hosts: vec!["evil.com:80".to_owned()],
            ..HttpConfig::default()
        };
        assert!(matches!(
            bad_host.validate(),
            Err(HttpConfigError::BadHost(_))
        ));
    }
}
