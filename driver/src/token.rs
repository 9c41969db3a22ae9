//! The optional bearer token that guards every `/v1` route.

use std::fmt;
use std::sync::Arc;

use hyper::header::{HeaderMap, AUTHORIZATION};

/// koi-udp's token header, accepted as well as `Authorization: Bearer`.
const KOI_TOKEN: &str = "x-koi-token";

/// A secret clients present as `Authorization: Bearer <token>` or `X-Koi-Token: <token>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<[u8]>);

/// A token that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is empty.
    #[error("the token is empty")]
    Empty,
    /// The token has characters an HTTP header cannot carry verbatim.
    #[error("the token must be visible ASCII without spaces")]
    NotVisibleAscii,
}

impl Token {
    /// A token; it must be non-empty visible ASCII so that clients can send it in a header.
    pub fn new(token: &str) -> Result<Self, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotVisibleAscii);
        }
        Ok(Token(token.as_bytes().into()))
    }

    /// Whether the request's headers carry this token.
    pub fn authorizes(&self, headers: &HeaderMap) -> bool {
        // Check every candidate, so the time taken does not say which header matched.
        let mut ok = false;
        for value in headers.get_all(AUTHORIZATION) {
            if let Some(presented) = bearer(value.as_bytes()) {
                ok |= self.matches(presented);
            }
        }
        for value in headers.get_all(KOI_TOKEN) {
            ok |= self.matches(value.as_bytes());
        }
        ok
    }

    /// Compares in time that depends only on the lengths, not on where the bytes differ.
    fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(&self.0, presented)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The credentials of an `Authorization: Bearer <credentials>` value (scheme
/// case-insensitive, as RFC 9110 says).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

/// Equality whose running time depends on the lengths only. The length of
/// the token is not treated as secret.
fn constant_time_eq(expected: &[u8], presented: &[u8]) -> bool {
    if expected.len() != presented.len() {
        return false;
    }
    let diff = expected
        .iter()
        .zip(presented)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn bearer_and_koi_headers_are_accepted() {
        let token = Token::new("s3cret").unwrap();
        assert!(token.authorizes(&headers(&[("authorization", "Bearer s3cret")])));
        assert!(token.authorizes(&headers(&[("authorization", "bearer  s3cret ")])));
        assert!(token.authorizes(&headers(&[("x-koi-token", "s3cret")])));
    }

    #[test]
    fn wrong_or_missing_tokens_are_refused() {
        let token = Token::new("s3cret").unwrap();
        assert!(!token.authorizes(&headers(&[])));
        assert!(!token.authorizes(&headers(&[("authorization", "Bearer s3creT")])));
        assert!(!token.authorizes(&headers(&[("authorization", "Basic s3cret")])));
        assert!(!token.authorizes(&headers(&[("authorization", "s3cret")])));
        assert!(!token.authorizes(&headers(&[("x-koi-token", "s3cret2")])));
    }

    #[test]
    fn unusable_tokens_are_rejected() {
        assert_eq!(Token::new(""), Err(TokenError::Empty));
        assert_eq!(Token::new("a b"), Err(TokenError::NotVisibleAscii));
    }

    #[test]
    fn token_is_redacted_in_debug_output() {
        assert!(!format!("{:?}", Token::new("s3cret").unwrap()).contains("s3cret"));
    }
}
