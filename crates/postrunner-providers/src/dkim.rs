//! DKIM signing of SMTP mail (RFC 6376), with lettre's signer: one key per sender
//! domain (`postrunner.sender_domains` where `signer = 'postrunner'`), RSA-2048
//! (PKCS#1 PEM) or Ed25519 (the 32-byte seed, base64), read from the variable or the
//! file the row names when the SMTP adapter is built. HTTP providers sign with their
//! own keys; the table records that too (`signer = 'provider'`).
//!
//! The signature covers From, To, Subject, Date and Message-ID, and the RFC 8058
//! List-Unsubscribe headers when the message has them (a receiver checks they were
//! not added or changed on the way). Headers relaxed, body relaxed.

use std::collections::HashMap;

use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey,
};
use lettre::message::header::HeaderName;
use postrunner_schema::statements;
use sqlx::PgPool;

/// Why a domain's key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("sender domain {domain}: {detail}")]
    Key { domain: String, detail: String },
    #[error("reading postrunner.sender_domains: {0}")]
    Database(#[from] sqlx::Error),
}

/// A domain's two configurations: with and without the List-Unsubscribe headers.
struct DomainKey {
    plain: DkimConfig,
    with_unsubscribe: DkimConfig,
}

/// The DKIM keys of the domains postrunner signs for.
#[derive(Default)]
pub struct DkimSigners {
    domains: HashMap<String, DomainKey>,
}

/// A `sender_domains` row postrunner signs for.
#[derive(sqlx::FromRow)]
struct SenderDomain {
    domain: String,
    selector: String,
    algorithm: String,
    key_env: Option<String>,
    key_file: Option<String>,
}

const SIGNED: [&str; 5] = ["From", "To", "Subject", "Date", "Message-ID"];
const UNSUBSCRIBE: [&str; 2] = ["List-Unsubscribe", "List-Unsubscribe-Post"];

impl DkimSigners {
    /// The keys of every `signer = 'postrunner'` domain.
    ///
    /// # Errors
    /// The table cannot be read, or a key is missing or unreadable.
    pub async fn load(pool: &PgPool) -> Result<Self, DkimError> {
        let rows: Vec<SenderDomain> = statements::providers::dkim_domains().rows().fetch_all(pool).await?;
        let mut signers = Self::default();
        for SenderDomain {
            domain,
            selector,
            algorithm,
            key_env,
            key_file,
        } in rows
        {
            let key_error = |detail: String| DkimError::Key {
                domain: domain.clone(),
                detail,
            };
            let key = match (key_env, key_file) {
                (Some(variable), _) => std::env::var(&variable)
                    .map_err(|_| key_error(format!("variable {variable} (key_env) is not set")))?,
                (None, Some(path)) => {
                    std::fs::read_to_string(&path).map_err(|e| key_error(format!("key_file {path}: {e}")))?
                }
                (None, None) => return Err(key_error("names no key_env or key_file".to_owned())),
            };
            signers.add(&domain, &selector, &algorithm, key.trim())?;
        }
        Ok(signers)
    }

    /// Adds `domain`'s key (`algorithm`: `rsa-sha256` or `ed25519-sha256`).
    ///
    /// # Errors
    /// The key does not parse for its algorithm.
    pub fn add(&mut self, domain: &str, selector: &str, algorithm: &str, key: &str) -> Result<(), DkimError> {
        let algorithm = match algorithm {
            "rsa-sha256" => DkimSigningAlgorithm::Rsa,
            "ed25519-sha256" => DkimSigningAlgorithm::Ed25519,
            other => {
                return Err(DkimError::Key {
                    domain: domain.to_owned(),
                    detail: format!("unknown algorithm {other:?}"),
                })
            }
        };
        let config = |extra: &[&'static str]| -> Result<DkimConfig, DkimError> {
            let key = DkimSigningKey::new(key, algorithm).map_err(|e| DkimError::Key {
                domain: domain.to_owned(),
                detail: format!("the private key does not parse: {e}"),
            })?;
            let headers = SIGNED
                .iter()
                .chain(extra)
                .map(|name| HeaderName::new_from_ascii_str(name))
                .collect();
            Ok(DkimConfig::new(
                selector.to_owned(),
                domain.to_owned(),
                key,
                headers,
                DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body: DkimCanonicalizationType::Relaxed,
                },
            ))
        };
        self.domains.insert(
            domain.to_lowercase(),
            DomainKey {
                plain: config(&[])?,
                with_unsubscribe: config(&UNSUBSCRIBE)?,
            },
        );
        Ok(())
    }

    /// Signs `message` if its sender's domain has a key.
    pub fn sign(&self, message: &mut lettre::Message, from_domain: &str, has_unsubscribe: bool) {
        if let Some(key) = self.domains.get(&from_domain.to_lowercase()) {
            message.sign(if has_unsubscribe {
                &key.with_unsubscribe
            } else {
                &key.plain
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}
