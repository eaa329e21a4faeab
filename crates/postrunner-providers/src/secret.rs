//! Secrets that must never reach a log line or a table.
//!
//! The database stores only the *name* of the environment variable that holds a key or
//! password; [`Secret::from_env`] reads it at the moment of use, and the value's
//! `Debug`/`Display` print a placeholder.

use std::fmt;

/// A value that redacts itself when formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself, for the one place that needs it (an auth header, a URL).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl Secret<String> {
    /// Reads the secret from environment variable `name`.
    ///
    /// # Errors
    /// [`MissingSecret`] when the variable is unset or not valid UTF-8; the error names
    /// the variable, never a value.
    pub fn from_env(name: &str) -> Result<Self, MissingSecret> {
        std::env::var(name).map(Self).map_err(|_| MissingSecret {
            variable: name.to_owned(),
        })
    }

    /// Whether `given` is this secret (an access token). Digests are compared, so the
    /// time taken says nothing about how much of it matched.
    pub fn matches(&self, given: &str) -> bool {
        let digest = |s: &str| ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
        digest(given).as_ref() == digest(&self.0).as_ref()
    }

    /// An access token from environment variable `name`: None when unset or empty.
    ///
    /// # Errors
    /// A token shorter than 16 characters (a guessable one is refused at start).
    pub fn token_from_env(name: &str) -> Result<Option<Self>, String> {
        match std::env::var(name) {
            Ok(token) if token.len() >= 16 => Ok(Some(Self(token))),
            Ok(token) if !token.is_empty() => Err(format!(
                "{name} must be at least 16 characters (e.g. openssl rand -hex 16)"
            )),
            _ => Ok(None),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header, if any.
pub fn bearer(headers: &reqwest::header::HeaderMap) -> Option<&str> {
    headers
        .get(reqwest::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret's environment variable is not set.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {variable} is not set (it should hold a secret)")]
pub struct MissingSecret {
    pub variable: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert!(!format!("{s:?} {s}").contains("hunter2"));
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn a_token_matches_only_itself() {
        let s = Secret::new("0123456789abcdef".to_string());
        assert!(s.matches("0123456789abcdef"));
        assert!(!s.matches("0123456789abcdeg") && !s.matches("") && !s.matches("0123456789abcdef "));
    }
}
