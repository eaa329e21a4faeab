//! Amazon SES v2: `POST {endpoint}/v2/email/outbound-emails` (endpoint default
//! `https://email.{region}.amazonaws.com`), JSON, signed with AWS Signature V4 (the
//! `aws-sigv4` crate; service name `ses`). 200 `{"MessageId"}`; errors name their type in
//! `x-amzn-ErrorType` with `{"message"}`. postrunner's id travels in `EmailTags` and the
//! `X-Postrunner-Id` header.
//!
//! Credentials: the provider's `secret_env` names one variable holding
//! `ACCESS_KEY_ID:SECRET_ACCESS_KEY`; `region` is the provider row's region.

use std::time::SystemTime;

use async_trait::async_trait;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use serde_json::{json, Value};

use super::http::{exchange, retry_after, truncate, Reply};
use super::{Accepted, OutgoingMessage, Provider, SendError, Suppressed};
use crate::secret::Secret;

/// An access key pair, from `ACCESS_KEY_ID:SECRET_ACCESS_KEY`.
pub struct AwsKeys {
    access_key_id: String,
    secret: Secret<String>,
}

impl AwsKeys {
    /// # Errors
    /// A text without a `:` between the two parts (the message never shows the value).
    pub fn parse(text: &Secret<String>) -> Result<Self, String> {
        let (id, secret) = text
            .expose()
            .split_once(':')
            .ok_or_else(|| "the SES secret must be ACCESS_KEY_ID:SECRET_ACCESS_KEY".to_owned())?;
        Ok(Self {
            access_key_id: id.to_owned(),
            secret: Secret::new(secret.to_owned()),
        })
    }
}

/// A request to sign: `headers` must include every header sent that is to be signed
/// (`host` as sent, with its port; `content-type`).
pub struct Unsigned<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The headers (`authorization`, `x-amz-date`) that sign `request` with SigV4 for
/// `service` in `region` at `time`.
///
/// # Errors
/// The URL cannot be parsed, or the signer refuses its inputs.
pub fn sigv4_headers(
    keys: &AwsKeys,
    region: &str,
    service: &str,
    time: SystemTime,
    request: &Unsigned<'_>,
) -> Result<Vec<(String, String)>, String> {
    let identity: Identity = Credentials::new(
        keys.access_key_id.clone(),
        keys.secret.expose().clone(),
        None,
        None,
        "postrunner",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|e| format!("signing: {e}"))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

pub struct Ses {
    name: String,
    endpoint: String,
    region: String,
    keys: AwsKeys,
    http: reqwest::Client,
}

impl Ses {
    pub fn new(name: &str, endpoint: &str, region: &str, keys: AwsKeys, http: reqwest::Client) -> Self {
        Self {
            name: name.to_owned(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            keys,
            http,
        }
    }

    pub fn body(message: &OutgoingMessage) -> Value {
        let mut body_parts = json!({});
        if let Some(text) = &message.text_body {
            body_parts["Text"] = json!({ "Data": text, "Charset": "UTF-8" });
        }
        if let Some(html) = &message.html_body {
            body_parts["Html"] = json!({ "Data": html, "Charset": "UTF-8" });
        }
        let headers: Vec<Value> = message
            .headers_to_send()
            .into_iter()
            .map(|(name, value)| json!({ "Name": name, "Value": value }))
            .collect();
        json!({
            "FromEmailAddress": message.from_header(),
            "Destination": { "ToAddresses": [message.to] },
            "Content": { "Simple": {
                "Subject": { "Data": message.subject, "Charset": "UTF-8" },
                "Body": body_parts,
                "Headers": headers,
            }},
            "EmailTags": [{ "Name": "postrunner_id", "Value": message.id.to_string() }],
        })
    }

    /// An SES error type: `MessageRejected` and `BadRequestException` reject the
    /// message; throttling, quotas, a paused or suspended account, unverified
    /// configuration and signature problems are the provider's trouble.
    fn refused(&self, status: u16, kind: &str, said: &str, headers: &reqwest::header::HeaderMap) -> SendError {
        let detail = format!("HTTP {status} {kind}: {}", truncate(said, 300));
        match kind {
            "MessageRejected" | "BadRequestException" => SendError::Rejected {
                provider: self.name.clone(),
                detail,
            },
            _ if status < 500 && status != 429 && status != 403 && !is_provider_trouble(kind) => SendError::Rejected {
                provider: self.name.clone(),
                detail,
            },
            // A gateway's 502 or 504: SES behind it may have taken the message.
            _ => SendError::Unavailable {
                provider: self.name.clone(),
                detail,
                retry_after: retry_after(headers),
                may_have_taken: super::http::gateway_failed(status),
            },
        }
    }
}

fn is_provider_trouble(kind: &str) -> bool {
    matches!(
        kind,
        "TooManyRequestsException"
            | "LimitExceededException"
            | "AccountSuspendedException"
            | "SendingPausedException"
            | "MailFromDomainNotVerifiedException"
            | "NotFoundException"
            | "InvalidSignatureException"
            | "UnrecognizedClientException"
            | "InternalServiceErrorException"
    )
}

#[async_trait]
impl Provider for Ses {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, SendError> {
        let body = serde_json::to_vec(&Self::body(message)).expect("JSON serializes");
        let request = self.signed("POST", "/v2/email/outbound-emails", body)?;
        let Reply {
            status,
            headers,
            text,
            json: reply,
        } = exchange(&self.name, request).await?;
        let status = status.as_u16();
        if status == 200 {
            let id = reply.as_ref().and_then(|r| r.get("MessageId")).and_then(Value::as_str);
            return Ok(Accepted {
                provider_message_id: id.unwrap_or_default().to_owned(),
            });
        }
        // "MessageRejected:http://internal.amazon.com/..." -> "MessageRejected".
        let kind = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(':')
                    .next()
                    .unwrap_or(v)
                    .rsplit('#')
                    .next()
                    .unwrap_or(v)
                    .to_owned()
            })
            .or_else(|| {
                let r = reply.as_ref()?;
                Some(r.get("__type").or_else(|| r.get("code"))?.as_str()?.to_owned())
            })
            .unwrap_or_default();
        let said = reply
            .as_ref()
            .and_then(|r| r.get("message").or_else(|| r.get("Message")))
            .and_then(Value::as_str)
            .map_or_else(|| text.clone(), str::to_owned);
        Err(self.refused(status, &kind, &said, &headers))
    }

    /// `GET /v2/email/suppression/addresses`: the account-level suppression list
    /// (BOUNCE, COMPLAINT), following `NextToken`.
    async fn suppressed(&self, _domains: &[String]) -> Result<Option<Vec<Suppressed>>, SendError> {
        let mut found = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..10_000 {
            let path = match &next {
                Some(token) => format!(
                    "/v2/email/suppression/addresses?NextToken={}",
                    url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
                ),
                None => "/v2/email/suppression/addresses".to_owned(),
            };
            let reply = exchange(&self.name, self.signed("GET", &path, Vec::new())?).await?;
            if !reply.status.is_success() {
                return Err(super::http::status_error(
                    &self.name,
                    reply.status,
                    &reply.headers,
                    reply.text,
                ));
            }
            let json = reply.json.unwrap_or_default();
            if let Some(items) = json.get("SuppressedDestinationSummaries").and_then(Value::as_array) {
                found.extend(items.iter().filter_map(|i| {
                    let address = i.get("EmailAddress")?.as_str()?.to_owned();
                    let reason = if i.get("Reason").and_then(Value::as_str) == Some("COMPLAINT") {
                        "complaint"
                    } else {
                        "hard_bounce"
                    };
                    Some(Suppressed { address, reason })
                }));
            }
            match json.get("NextToken").and_then(Value::as_str) {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => break,
            }
        }
        Ok(Some(found))
    }

    /// `GET /v2/email/account`: the account's sending status, signed like a send.
    async fn probe(&self) -> Result<(), SendError> {
        super::http::probe(&self.name, self.signed("GET", "/v2/email/account", Vec::new())?).await
    }
}

impl Ses {
    /// A JSON request to `path`, signed for `ses` in this provider's region.
    fn signed(&self, method: &str, path: &str, body: Vec<u8>) -> Result<reqwest::RequestBuilder, SendError> {
        let unavailable = |detail: String| SendError::Unavailable {
            provider: self.name.clone(),
            detail,
            retry_after: None,
            may_have_taken: false,
        };
        let url = format!("{}{path}", self.endpoint);
        let parsed = reqwest::Url::parse(&url).map_err(|e| unavailable(format!("endpoint: {e}")))?;
        // The Host header as it will be sent, port included.
        let host = match parsed.port() {
            Some(port) => format!("{}:{port}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_owned(),
        };
        let signed = sigv4_headers(
            &self.keys,
            &self.region,
            "ses",
            SystemTime::now(),
            &Unsigned {
                method,
                url: &url,
                headers: &[("host", &host), ("content-type", "application/json")],
                body: &body,
            },
        )
        .map_err(unavailable)?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| unavailable(e.to_string()))?;
        let mut request = self
            .http
            .request(method, &url)
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AWS SigV4 test suite's `post-vanilla` case: our use of the signer (service,
    /// region, signed headers, time) reproduces AWS's published signature.
    #[test]
    fn signs_the_aws_test_suite_post_vanilla_request() {
        let keys = AwsKeys::parse(&Secret::new(
            "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        ))
        .unwrap();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let headers = sigv4_headers(
            &keys,
            "us-east-1",
            "service",
            time,
            &Unsigned {
                method: "POST",
                url: "https://example.amazonaws.com/",
                headers: &[("host", "example.amazonaws.com")],
                body: b"",
            },
        )
        .unwrap();
        let authorization = headers.iter().find(|(n, _)| n == "authorization").unwrap();
        assert_eq!(
            authorization.1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
    }

    #[test]
    fn keys_need_both_parts() {
        assert!(AwsKeys::parse(&Secret::new("only-an-id".into())).is_err());
    }
}
