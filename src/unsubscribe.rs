//! Signed one-click unsubscribe links (RFC 8058).
//!
//! A message's link is `{base}/u/{token}`, the token `<message id, 32 hex>.<tag>`: the
//! tag is HMAC-SHA256 over the message id, its client and its recipient (lower-cased),
//! under the key in `POSTRUNNER_UNSUBSCRIBE_KEY`, base64url without padding. The
//! recipient's address is never in the URL (links end up in logs); the web role reads
//! the client and recipient of the message and checks the tag against them, so a token
//! is good for that one recipient of that one client. A key being rotated out stays
//! valid in `POSTRUNNER_UNSUBSCRIBE_KEY_PREVIOUS`. The same inputs always give the same
//! token, so a repeated send (Resend's idempotent replay) is the very same request.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use uuid::Uuid;

use postrunner_providers::secret::MissingSecret;

/// The variable holding the signing key (at least 32 bytes).
pub const KEY_VARIABLE: &str = "POSTRUNNER_UNSUBSCRIBE_KEY";
/// The variable holding the previous key, still accepted while links signed with it
/// are in inboxes.
pub const PREVIOUS_KEY_VARIABLE: &str = "POSTRUNNER_UNSUBSCRIBE_KEY_PREVIOUS";

/// Why the keys cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Missing(#[from] MissingSecret),
    #[error("{0} must hold at least 32 bytes (e.g. `openssl rand -base64 32`)")]
    TooShort(&'static str),
}

/// The keys links are signed (current) and checked (current, then previous) with.
#[derive(Clone)]
pub struct UnsubscribeKeys {
    current: hmac::Key,
    previous: Option<hmac::Key>,
}

impl std::fmt::Debug for UnsubscribeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeKeys(<redacted>)")
    }
}

/// A token's parts, before its tag is checked.
#[derive(Debug, PartialEq, Eq)]
pub struct Token {
    pub message: Uuid,
    tag: Vec<u8>,
}

impl Token {
    /// Reads a token from a URL path segment; `None` when it is not one's shape.
    pub fn parse(text: &str) -> Option<Self> {
        let (id, tag) = text.split_once('.')?;
        if id.len() != 32 || tag.len() > 64 {
            return None;
        }
        Some(Self {
            message: Uuid::try_parse(id).ok()?,
            tag: URL_SAFE_NO_PAD.decode(tag).ok()?,
        })
    }
}

impl UnsubscribeKeys {
    /// Keys from their bytes.
    ///
    /// # Errors
    /// A key shorter than 32 bytes.
    pub fn new(current: &[u8], previous: Option<&[u8]>) -> Result<Self, KeyError> {
        if current.len() < 32 {
            return Err(KeyError::TooShort(KEY_VARIABLE));
        }
        if previous.is_some_and(|p| p.len() < 32) {
            return Err(KeyError::TooShort(PREVIOUS_KEY_VARIABLE));
        }
        Ok(Self {
            current: hmac::Key::new(hmac::HMAC_SHA256, current),
            previous: previous.map(|p| hmac::Key::new(hmac::HMAC_SHA256, p)),
        })
    }

    /// The keys from [`KEY_VARIABLE`] and, when set, [`PREVIOUS_KEY_VARIABLE`].
    ///
    /// # Errors
    /// The current key is not set, or a key is too short.
    pub fn from_env() -> Result<Self, KeyError> {
        let current = std::env::var(KEY_VARIABLE).map_err(|_| MissingSecret {
            variable: KEY_VARIABLE.to_owned(),
        })?;
        let previous = std::env::var(PREVIOUS_KEY_VARIABLE).ok().filter(|p| !p.is_empty());
        Self::new(current.as_bytes(), previous.as_deref().map(str::as_bytes))
    }

    fn signed(message: Uuid, client: &str, recipient: &str) -> Vec<u8> {
        let mut data = b"postrunner unsubscribe v1\0".to_vec();
        data.extend_from_slice(message.as_bytes());
        data.extend_from_slice(client.as_bytes());
        data.push(0);
        data.extend_from_slice(recipient.to_lowercase().as_bytes());
        data
    }

    /// The token for `message` of `client` to `recipient`.
    pub fn token(&self, message: Uuid, client: &str, recipient: &str) -> String {
        let tag = hmac::sign(&self.current, &Self::signed(message, client, recipient));
        format!("{}.{}", message.simple(), URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Whether `token` was signed (with either key) for its message's `client` and
    /// `recipient`. Constant time in the tag.
    pub fn verify(&self, token: &Token, client: &str, recipient: &str) -> bool {
        let data = Self::signed(token.message, client, recipient);
        std::iter::once(&self.current)
            .chain(self.previous.as_ref())
            .any(|key| hmac::verify(key, &data, &token.tag).is_ok())
    }
}

/// Where a worker's messages point their unsubscribe links: the web role's public
/// base URL and the signing keys.
#[derive(Clone, Debug)]
pub struct UnsubscribeLinks {
    base: String,
    keys: UnsubscribeKeys,
}

impl UnsubscribeLinks {
    pub fn new(base: &str, keys: UnsubscribeKeys) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            keys,
        }
    }

    /// The message's one-click link.
    pub fn url(&self, message: Uuid, client: &str, recipient: &str) -> String {
        format!("{}/u/{}", self.base, self.keys.token(message, client, recipient))
    }

    /// A `mailto:` URI for List-Unsubscribe beside the link: the client's `mailbox`,
    /// with the message's token in the subject so that whoever reads that mailbox can
    /// tell which message (and recipient) it is about (the token holds only
    /// URL-safe characters).
    pub fn mailto(&self, mailbox: &str, message: Uuid, client: &str, recipient: &str) -> String {
        format!(
            "mailto:{mailbox}?subject=unsubscribe%20{}",
            self.keys.token(message, client, recipient)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> UnsubscribeKeys {
        UnsubscribeKeys::new(&[7; 32], None).unwrap()
    }

    #[test]
    fn a_token_is_good_for_its_message_client_and_recipient_only() {
        let id = Uuid::new_v4();
        let token = Token::parse(&keys().token(id, "acme", "Jane@Example.org")).unwrap();
        assert_eq!(token.message, id);
        assert!(keys().verify(&token, "acme", "jane@example.org"));
        assert!(!keys().verify(&token, "globex", "jane@example.org"));
        assert!(!keys().verify(&token, "acme", "joe@example.org"));
        let other = UnsubscribeKeys::new(&[8; 32], None).unwrap();
        assert!(!other.verify(&token, "acme", "jane@example.org"));
    }

    #[test]
    fn a_rotated_key_still_checks_links_it_signed() {
        let id = Uuid::new_v4();
        let old = UnsubscribeKeys::new(&[1; 32], None).unwrap();
        let token = Token::parse(&old.token(id, "acme", "a@b.test")).unwrap();
        let rotated = UnsubscribeKeys::new(&[2; 32], Some(&[1; 32])).unwrap();
        assert!(rotated.verify(&token, "acme", "a@b.test"));
    }

    #[test]
    fn malformed_tokens_and_short_keys_are_refused() {
        for bad in ["", "x", "abc.def", &format!("{}.***", Uuid::new_v4().simple())] {
            assert_eq!(Token::parse(bad), None, "{bad}");
        }
        assert!(UnsubscribeKeys::new(b"short", None).is_err());
    }
}
