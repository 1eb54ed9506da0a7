//! Authentication primitives: secrets that do not print, constant-time token comparison and
//! Pagure's web-hook HMAC signatures.

use std::fmt;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret string. `Debug` and `Display` print `[redacted]`, so a secret that ends up in a
/// struct that is logged stays out of the log.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Compares a presented token with the expected one in constant time. Both sides are hashed
/// first so that neither the content nor the length of the expected token leaks through
/// timing. An empty expected token never matches.
pub fn token_matches(presented: &[u8], expected: &Secret) -> bool {
    if expected.is_empty() {
        return false;
    }
    let a = Sha256::digest(presented);
    let b = Sha256::digest(expected.expose().as_bytes());
    a.ct_eq(&b).into()
}

/// Verifies Pagure's `X-Pagure-Signature-256`: hex HMAC-SHA256 of the raw body keyed with the
/// project's hook token. Comparison is constant-time (`verify_slice`).
pub fn signature256_matches(body: &[u8], header_hex: &str, key: &Secret) -> bool {
    if key.is_empty() {
        return false;
    }
    let Ok(signature) = hex::decode(header_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The hex HMAC-SHA256 Pagure would send for `body` (for tests and for clients of the JSON
/// trigger that sign their requests).
pub fn sign256(body: &[u8], key: &Secret) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("hmac key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The hex HMAC-SHA1 of `X-Pagure-Signature` (only for reproducing Pagure's captures; the
/// bridge itself verifies the SHA-256 signature).
pub fn sign1(body: &[u8], key: &Secret) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.expose().as_bytes()).expect("hmac key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Credentials found in an `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// `token <t>` (Pagure's form) or `Bearer <t>`.
    Token(&'a str),
    /// HTTP Basic, decoded. Not `Debug`-safe for the password: never log this value.
    Basic { user: String, password: Secret },
    /// A header that is neither.
    Unsupported,
}

/// Parses an `Authorization` header value.
pub fn parse_authorization(value: &str) -> Presented<'_> {
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Presented::Unsupported;
        }
        return Presented::Token(rest);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(rest).ok().and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
            return Presented::Basic { user: user.to_owned(), password: Secret::new(password) };
        }
    }
    Presented::Unsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
    }

    #[test]
    fn tokens_compare_exactly() {
        let expected = Secret::new("MKKMQGHTH104Z0A1Z6IJ5IE3QUS7XA9P");
        assert!(token_matches(b"MKKMQGHTH104Z0A1Z6IJ5IE3QUS7XA9P", &expected));
        assert!(!token_matches(b"MKKMQGHTH104Z0A1Z6IJ5IE3QUS7XA9", &expected));
        assert!(!token_matches(b"", &expected));
        assert!(!token_matches(b"", &Secret::default()));
    }

    #[test]
    fn signature_reproduces_pagure() {
        // From the shared capture `git.receive`: sign the exact body with the hook token.
        let key = Secret::new("UIX8VLL3OC07G9OR8K9V1S5VNMOEFD80IJJI1HN7");
        let body = br#"{"a": 1}"#;
        let sig = sign256(body, &key);
        assert!(signature256_matches(body, &sig, &key));
        assert!(signature256_matches(body, &sig.to_uppercase(), &key));
        assert!(!signature256_matches(br#"{"a": 2}"#, &sig, &key));
        assert!(!signature256_matches(body, "zz", &key));
        assert!(!signature256_matches(body, &sig, &Secret::default()));
    }

    #[test]
    fn authorization_forms() {
        assert_eq!(parse_authorization("token abc"), Presented::Token("abc"));
        assert_eq!(parse_authorization("Bearer  abc "), Presented::Token("abc"));
        assert_eq!(parse_authorization("token"), Presented::Unsupported);
        assert_eq!(parse_authorization("Digest x"), Presented::Unsupported);
        match parse_authorization("Basic YWxpY2U6czNjcjN0OnRvbw==") {
            Presented::Basic { user, password } => {
                assert_eq!(user, "alice");
                assert_eq!(password.expose(), "s3cr3t:too");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_authorization("Basic !!!"), Presented::Unsupported);
    }
}
