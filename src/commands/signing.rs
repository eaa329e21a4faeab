//! Signing webhook requests the way SendGrid does (ECDSA P-256 over timestamp + body),
//! for the demo and `bench events`, which play the provider's part. The tests sign with
//! independent code instead (tests/support/sign_webhook.py).

use base64::Engine as _;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};

/// The DER prefix of a P-256 SubjectPublicKeyInfo, before the 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A fresh SendGrid-style signing key.
pub struct SendGridSigner {
    key: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl SendGridSigner {
    pub fn generate() -> anyhow::Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| anyhow::anyhow!("generating a P-256 key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow::anyhow!("reading the P-256 key"))?;
        Ok(Self { key, rng })
    }

    /// The verification key as SendGrid's console shows it (base64 DER SPKI).
    pub fn public_key(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode([&P256_SPKI_PREFIX[..], self.key.public_key().as_ref()].concat())
    }

    /// The signature and timestamp headers for `body` signed at `timestamp`.
    pub fn headers(&self, timestamp: i64, body: &str) -> Vec<(String, String)> {
        let signature = self
            .key
            .sign(&self.rng, format!("{timestamp}{body}").as_bytes())
            .expect("signing with a valid key");
        vec![
            (
                "X-Twilio-Email-Event-Webhook-Timestamp".to_owned(),
                timestamp.to_string(),
            ),
            (
                "X-Twilio-Email-Event-Webhook-Signature".to_owned(),
                base64::engine::general_purpose::STANDARD.encode(signature.as_ref()),
            ),
        ]
    }
}
