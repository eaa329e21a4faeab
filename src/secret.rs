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
}
