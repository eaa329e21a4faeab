//! The provider simulators live in the library (the demo and `bench send` use them too).
pub use postrunner_sim::*;

/// The key the fakes accept, and the AWS key pair of the SES fake (SES takes a pair:
/// `id:secret`).
pub const KEY: &str = "test-key-123";
pub const AWS_KEYS: &str = "AKIDTEST:test-secret-123";

/// One running fake of every HTTP provider kind, named as a deployment would name
/// them (sg, mg, pm, rs, ses), with their secrets in fresh variables of this process.
pub struct Fleet {
    pub fakes: Vec<(&'static str, FakeProvider)>,
    /// `(name, kind, endpoint, secret_env, region)` rows for postrunner.providers.
    pub rows: Vec<String>,
}

impl Fleet {
    pub async fn start() -> Self {
        let suffix = uuid::Uuid::new_v4().simple().to_string().to_uppercase();
        let (key_var, aws_var) = (format!("PR_TEST_KEY_{suffix}"), format!("PR_TEST_AWS_{suffix}"));
        // Unique names: no other test reads these variables.
        std::env::set_var(&key_var, KEY);
        std::env::set_var(&aws_var, AWS_KEYS);
        let mut fakes = Vec::new();
        let mut rows = Vec::new();
        for (name, kind, fake_kind) in [
            ("sg", "sendgrid", Kind::SendGrid),
            ("mg", "mailgun", Kind::Mailgun),
            ("pm", "postmark", Kind::Postmark),
            ("rs", "resend", Kind::Resend),
            ("ses", "ses", Kind::Ses),
        ] {
            let fake = FakeProvider::start(fake_kind, if fake_kind == Kind::Ses { AWS_KEYS } else { KEY }).await;
            let var = if fake_kind == Kind::Ses { &aws_var } else { &key_var };
            rows.push(format!("('{name}', '{kind}', '{}', '{var}', 'us-east-1')", fake.url));
            fakes.push((name, fake));
        }
        Self { fakes, rows }
    }

    /// The fake named `name`.
    pub fn get(&self, name: &str) -> &FakeProvider {
        &self
            .fakes
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a fake of that name")
            .1
    }
}
