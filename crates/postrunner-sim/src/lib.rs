//! Local simulators of each HTTP provider's wire format (as documented by each provider;
//! the adapters in postrunner-providers name the documents):
//! they check what the provider checks (path, auth, required fields, the SES signature),
//! answer its probe call, and inject the faults a caller asks for: an error status with
//! the provider's own error body and headers, a response slower than the client's
//! timeout, a connection dropped mid-response. The tests, `postrunner demo` and
//! `postrunner bench send` run against them; nothing here is used in production.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SendGrid,
    Mailgun,
    Postmark,
    Resend,
    /// Amazon SES v2; the key is `ACCESS_KEY_ID:SECRET_ACCESS_KEY`, region `us-east-1`.
    Ses,
}

/// What the next request gets instead of the normal answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// This status, body and headers.
    Reply(u16, String, Vec<(&'static str, String)>),
    /// The normal answer, after this long.
    Slow(Duration),
    /// Headers of a 200 are sent, then the connection breaks before the body.
    Drop,
}

/// A request as the fake received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: String,
    pub json: Option<Value>,
    pub form: Vec<(String, String)>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_lowercase()).map(String::as_str)
    }

    pub fn field(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

struct Inner {
    kind: Kind,
    key: String,
    received: Mutex<Vec<Received>>,
    faults: Mutex<VecDeque<Fault>>,
    /// Faults every request gets, in turn, once the queued ones are used up.
    always: Mutex<(Vec<Fault>, usize)>,
    /// Added to every answer, like a real provider's round trip.
    latency: Mutex<Duration>,
    /// Resend's idempotency memory: key -> (body, response).
    idempotent: Mutex<HashMap<String, (String, Value)>>,
    /// Messages the fake took (answered 2xx, or processed before a fault cut the
    /// answer off): postrunner's id -> the fake's id for it. What lookups search.
    taken: Mutex<HashMap<String, String>>,
    /// The account's suppression list: (address, postrunner's reason for it).
    suppressed: Mutex<Vec<(String, String)>>,
}

/// A running fake provider on 127.0.0.1.
#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    inner: Arc<Inner>,
}

impl FakeProvider {
    /// Starts a fake of `kind` that accepts `key`.
    pub async fn start(kind: Kind, key: &str) -> Self {
        let inner = Arc::new(Inner {
            kind,
            key: key.to_owned(),
            received: Mutex::default(),
            faults: Mutex::default(),
            always: Mutex::default(),
            latency: Mutex::default(),
            idempotent: Mutex::default(),
            taken: Mutex::default(),
            suppressed: Mutex::default(),
        });
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        tracing::debug!(kind = ?kind, url = %url, "provider simulator listening");
        Self { url, inner }
    }

    /// Queues faults for the next requests, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = Fault>) {
        self.inner.faults.lock().unwrap().extend(faults);
    }

    /// From now on every request gets one of `faults`, in turn (empty: heal).
    pub fn fail_always(&self, faults: Vec<Fault>) {
        *self.inner.always.lock().unwrap() = (faults, 0);
    }

    /// Every answer takes at least `latency`.
    pub fn set_latency(&self, latency: Duration) {
        *self.inner.latency.lock().unwrap() = latency;
    }

    /// Every request received so far (lookups aside).
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }

    /// The account's suppression list, served in the provider's own format:
    /// (address, `hard_bounce` | `complaint` | `unsubscribe`).
    pub fn set_suppressed(&self, list: &[(&str, &str)]) {
        *self.inner.suppressed.lock().unwrap() = list.iter().map(|(a, r)| ((*a).to_owned(), (*r).to_owned())).collect();
    }

    /// How many messages the fake took (processed), whatever its answer said.
    pub fn taken(&self) -> usize {
        self.inner.taken.lock().unwrap().len()
    }
}

impl Inner {
    /// Remembers that the message `r` carries (postrunner's id, from where this kind
    /// puts it) was taken, under the fake's `id`.
    fn took(&self, r: &Received, id: &str) {
        let ours = match self.kind {
            Kind::Postmark => r
                .json
                .as_ref()
                .and_then(|b| b.pointer("/Metadata/postrunner_id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            Kind::Mailgun => r.field("v:postrunner_id").first().map(|v| (*v).to_owned()),
            _ => r
                .json
                .as_ref()
                .and_then(|b| b.pointer("/headers/X-Postrunner-Id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let ours = ours.unwrap_or_else(|| format!("unknown-{}", uuid::Uuid::new_v4()));
        self.taken.lock().unwrap().insert(ours, id.to_owned());
    }
}

/// Postmark's outbound search and Mailgun's event log, over what the fake took.
fn lookup(inner: &Inner, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let query: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
    match inner.kind {
        Kind::Postmark if uri.path() == "/messages/outbound" => {
            if header("x-postmark-server-token") != inner.key {
                return Some(json_reply(401, json!({ "ErrorCode": 10, "Message": "bad token" })));
            }
            let found = param("metadata_postrunner_id").and_then(|id| inner.taken.lock().unwrap().get(&id).cloned());
            let messages: Vec<Value> = found.iter().map(|id| json!({ "MessageID": id })).collect();
            Some(json_reply(
                200,
                json!({ "TotalCount": messages.len(), "Messages": messages }),
            ))
        }
        Kind::Mailgun if uri.path().starts_with("/v3/") && uri.path().ends_with("/events") => {
            if header("authorization") != format!("Basic {}", base64_basic("api", &inner.key)) {
                return Some((StatusCode::UNAUTHORIZED, "Forbidden").into_response());
            }
            let ours = param("user-variables")
                .and_then(|v| serde_json::from_str::<Value>(&v).ok())
                .and_then(|v| v.get("postrunner_id").and_then(Value::as_str).map(str::to_owned));
            let found = ours.and_then(|id| inner.taken.lock().unwrap().get(&id).cloned());
            let items: Vec<Value> = found
                .iter()
                .map(|id| json!({ "event": "accepted", "message": { "headers": { "message-id": id.trim_matches(|c| c == '<' || c == '>') } } }))
                .collect();
            Some(json_reply(200, json!({ "items": items, "paging": {} })))
        }
        _ => suppression_list(inner, uri, headers),
    }
}

/// The account's suppression list as each provider serves it (pages included).
fn suppression_list(inner: &Inner, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let query: Vec<(String, String)> = serde_urlencoded::from_str(uri.query().unwrap_or_default()).unwrap_or_default();
    let path = uri.path();
    match inner.kind {
        Kind::SendGrid if path.starts_with("/v3/suppression/") => {
            Some(sendgrid_suppressions(inner, path, headers, &query))
        }
        Kind::Mailgun
            if path.starts_with("/v3/")
                && ["/bounces", "/complaints", "/unsubscribes"]
                    .iter()
                    .any(|l| path.ends_with(l)) =>
        {
            Some(mailgun_suppressions(inner, path, headers, &query))
        }
        Kind::Postmark if path == "/message-streams/outbound/suppressions/dump" => {
            Some(postmark_suppressions(inner, headers))
        }
        Kind::Ses if path == "/v2/email/suppression/addresses" => {
            let signed = Received {
                path: match uri.query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path.to_owned(),
                },
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_lowercase(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                json: None,
                form: Vec::new(),
                body: String::new(),
            };
            Some(ses(inner, &signed, "GET"))
        }
        _ => None,
    }
}

/// A query parameter's value.
fn param(query: &[(String, String)], name: &str) -> Option<String> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

/// A header's value, or "".
fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

/// The suppressed addresses listed for `reason`.
fn listed(inner: &Inner, reason: &str) -> Vec<String> {
    let list = inner.suppressed.lock().unwrap();
    list.iter()
        .filter(|(_, r)| r == reason)
        .map(|(a, _)| a.clone())
        .collect()
}

/// SendGrid's suppression lists: one per reason, paged by limit and offset.
fn sendgrid_suppressions(inner: &Inner, path: &str, headers: &HeaderMap, query: &[(String, String)]) -> Response {
    if header(headers, "authorization") != format!("Bearer {}", inner.key) {
        return json_reply(401, json!({ "errors": [{ "message": "authorization required" }] }));
    }
    let reason = match path.trim_start_matches("/v3/suppression/") {
        "bounces" => "hard_bounce",
        "spam_reports" => "complaint",
        "unsubscribes" => "unsubscribe",
        _ => return json_reply(404, json!({ "errors": [{ "message": "not found" }] })),
    };
    let limit: usize = param(query, "limit").and_then(|v| v.parse().ok()).unwrap_or(500);
    let offset: usize = param(query, "offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = listed(inner, reason)
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|email| json!({ "email": email, "created": 1_700_000_000 }))
        .collect();
    json_reply(200, Value::Array(page))
}

/// Mailgun's suppression lists: one page with everything, then an empty one (as
/// Mailgun ends a listing).
fn mailgun_suppressions(inner: &Inner, path: &str, headers: &HeaderMap, query: &[(String, String)]) -> Response {
    if header(headers, "authorization") != format!("Basic {}", base64_basic("api", &inner.key)) {
        return (StatusCode::UNAUTHORIZED, "Forbidden").into_response();
    }
    let reason = match path.rsplit('/').next().unwrap_or_default() {
        "bounces" => "hard_bounce",
        "complaints" => "complaint",
        _ => "unsubscribe",
    };
    let items: Vec<Value> = if param(query, "page").is_some() {
        Vec::new()
    } else {
        listed(inner, reason)
            .into_iter()
            .map(|address| json!({ "address": address }))
            .collect()
    };
    let next = format!("http://{}{path}?page=next&limit=1000", header(headers, "host"));
    json_reply(200, json!({ "items": items, "paging": { "next": next } }))
}

/// Postmark's suppression dump: every suppressed address with Postmark's reason.
fn postmark_suppressions(inner: &Inner, headers: &HeaderMap) -> Response {
    if header(headers, "x-postmark-server-token") != inner.key {
        return json_reply(401, json!({ "ErrorCode": 10, "Message": "bad token" }));
    }
    let list = inner.suppressed.lock().unwrap().clone();
    let items: Vec<Value> = list
        .into_iter()
        .map(|(address, reason)| {
            let reason = match reason.as_str() {
                "hard_bounce" => "HardBounce",
                "complaint" => "SpamComplaint",
                _ => "ManualSuppression",
            };
            json!({ "EmailAddress": address, "SuppressionReason": reason, "Origin": "Recipient" })
        })
        .collect();
    json_reply(200, json!({ "Suppressions": items }))
}

/// SES's suppression list, one address per page (so that NextToken is exercised).
fn ses_suppression_page(inner: &Inner, path: &str) -> Response {
    let list = inner.suppressed.lock().unwrap().clone();
    let start: usize = path
        .split_once("NextToken=")
        .and_then(|(_, t)| t.trim_start_matches("page").parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = list
        .iter()
        .skip(start)
        .take(1)
        .map(|(address, reason)| {
            json!({ "EmailAddress": address, "Reason": if reason == "complaint" { "COMPLAINT" } else { "BOUNCE" } })
        })
        .collect();
    let mut body = json!({ "SuppressedDestinationSummaries": page });
    if start + 1 < list.len() {
        body["NextToken"] = json!(format!("page{}", start + 1));
    }
    json_reply(200, body)
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::GET {
        if let Some(answer) = lookup(&inner, &uri, &headers) {
            return answer;
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let received = Received {
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_lowercase(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        json: serde_json::from_str(&text).ok(),
        form: serde_urlencoded::from_str(&text).unwrap_or_default(),
        body: text,
    };
    inner.received.lock().unwrap().push(received.clone());
    let latency = *inner.latency.lock().unwrap();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = inner.faults.lock().unwrap().pop_front().or_else(|| {
        let mut always = inner.always.lock().unwrap();
        let (faults, next) = &mut *always;
        let fault = (!faults.is_empty()).then(|| faults[*next % faults.len()].clone());
        *next += 1;
        fault
    });
    match fault {
        Some(Fault::Reply(status, body, headers)) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        // Taken at once, answered too late (the client may have given up by then).
        Some(Fault::Slow(delay)) => {
            let answer = respond(&inner, &method, &received);
            tokio::time::sleep(delay).await;
            answer
        }
        // Taken, then the connection breaks before the answer's body.
        Some(Fault::Drop) => {
            let _taken = respond(&inner, &method, &received);
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped by the fake"))
            });
            Response::builder()
                .status(200)
                .header("content-length", "100")
                .body(Body::from_stream(broken))
                .unwrap()
        }
        None => respond(&inner, &method, &received),
    }
}

/// The provider's normal answer to a request.
fn respond(inner: &Inner, method: &Method, received: &Received) -> Response {
    if method == Method::GET {
        return probe(inner, received);
    }
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "").into_response();
    }
    match inner.kind {
        Kind::SendGrid => sendgrid(inner, received),
        Kind::Postmark => postmark(inner, received),
        Kind::Resend => resend(inner, received),
        Kind::Mailgun => mailgun(inner, received),
        Kind::Ses => ses(inner, received, "POST"),
    }
}

fn json_reply(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// The cheap authenticated GET each provider answers (what health probes call).
fn probe(inner: &Inner, r: &Received) -> Response {
    let authorized = match inner.kind {
        Kind::SendGrid => {
            r.path == "/v3/scopes" && r.header("authorization") == Some(format!("Bearer {}", inner.key).as_str())
        }
        Kind::Resend => {
            r.path == "/domains" && r.header("authorization") == Some(format!("Bearer {}", inner.key).as_str())
        }
        Kind::Postmark => r.path == "/server" && r.header("x-postmark-server-token") == Some(inner.key.as_str()),
        Kind::Mailgun => {
            r.path.starts_with("/v3/domains")
                && r.header("authorization") == Some(format!("Basic {}", base64_basic("api", &inner.key)).as_str())
        }
        Kind::Ses => {
            return if r.path == "/v2/email/account" {
                ses(inner, r, "GET")
            } else {
                json_reply(404, json!({ "message": "not found" }))
            };
        }
    };
    if authorized {
        json_reply(200, json!({}))
    } else {
        json_reply(401, json!({ "message": "unauthorized" }))
    }
}

fn sendgrid(inner: &Inner, r: &Received) -> Response {
    let error = |status, field: Option<&str>, message: &str| {
        json_reply(
            status,
            json!({ "errors": [{ "message": message, "field": field, "help": null }] }),
        )
    };
    if r.path != "/v3/mail/send" {
        return error(404, None, "not found");
    }
    if r.header("authorization") != Some(format!("Bearer {}", inner.key).as_str()) {
        return error(
            401,
            None,
            "The provided authorization grant is invalid, expired, or revoked",
        );
    }
    let Some(body) = &r.json else {
        return error(400, None, "Bad Request");
    };
    if body
        .pointer("/personalizations/0/to/0/email")
        .and_then(Value::as_str)
        .is_none()
    {
        return error(
            400,
            Some("personalizations.0.to"),
            "The to array is required for all personalization objects",
        );
    }
    if body.pointer("/from/email").and_then(Value::as_str).is_none() {
        return error(
            400,
            Some("from.email"),
            "The from email does not contain a valid address.",
        );
    }
    if body.get("subject").and_then(Value::as_str).is_none_or(str::is_empty) {
        return error(400, Some("subject"), "The subject is required.");
    }
    let content_ok = body.get("content").and_then(Value::as_array).is_some_and(|c| {
        !c.is_empty()
            && c.iter()
                .all(|p| p.get("value").and_then(Value::as_str).is_some_and(|v| !v.is_empty()))
    });
    if !content_ok {
        return error(
            400,
            Some("content"),
            "The content value must be a string at least one character in length.",
        );
    }
    let custom_args_ok = body
        .pointer("/personalizations/0/custom_args")
        .and_then(Value::as_object)
        .is_none_or(|args| args.values().all(Value::is_string));
    if !custom_args_ok {
        return error(
            400,
            Some("personalizations.0.custom_args"),
            "Invalid type. Expected: string",
        );
    }
    let id = format!("SG{}", uuid::Uuid::new_v4().simple());
    inner.took(r, &id);
    Response::builder()
        .status(202)
        .header("X-Message-Id", id)
        .body(Body::empty())
        .unwrap()
}

fn postmark(inner: &Inner, r: &Received) -> Response {
    let refused =
        |status, code: i64, message: &str| json_reply(status, json!({ "ErrorCode": code, "Message": message }));
    if r.path != "/email" {
        return refused(404, 0, "not found");
    }
    if r.header("x-postmark-server-token") != Some(inner.key.as_str()) {
        return refused(
            401,
            10,
            "No Account or Server API tokens were supplied in the HTTP headers.",
        );
    }
    let Some(body) = &r.json else {
        return refused(422, 402, "Received invalid JSON input.");
    };
    let has = |field: &str| body.get(field).and_then(Value::as_str).is_some_and(|v| !v.is_empty());
    if !has("From") || !has("To") || !(has("TextBody") || has("HtmlBody")) {
        return refused(422, 300, "Invalid email request");
    }
    let id = uuid::Uuid::new_v4().to_string();
    inner.took(r, &id);
    json_reply(
        200,
        json!({
            "To": body["To"], "SubmittedAt": chrono::Utc::now().to_rfc3339(),
            "MessageID": id, "ErrorCode": 0, "Message": "OK"
        }),
    )
}

fn resend(inner: &Inner, r: &Received) -> Response {
    let error = |status: u16, name: &str, message: &str| {
        json_reply(
            status,
            json!({ "statusCode": status, "name": name, "message": message }),
        )
    };
    if r.path != "/emails" {
        return error(404, "not_found", "The requested endpoint does not exist.");
    }
    if r.header("authorization") != Some(format!("Bearer {}", inner.key).as_str()) {
        return error(401, "validation_error", "API key is invalid");
    }
    let Some(body) = &r.json else {
        return error(422, "invalid_parameter", "invalid JSON");
    };
    for field in ["from", "to", "subject"] {
        if body.get(field).is_none() {
            return error(422, "missing_required_field", &format!("Missing `{field}` field."));
        }
    }
    let reply = json!({ "id": uuid::Uuid::new_v4().to_string() });
    match r.header("idempotency-key") {
        Some(key) => {
            let mut seen = inner.idempotent.lock().unwrap();
            match seen.get(key) {
                Some((same, original)) if *same == r.body => json_reply(200, original.clone()),
                Some(_) => error(
                    409,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload.",
                ),
                None => {
                    seen.insert(key.to_owned(), (r.body.clone(), reply.clone()));
                    inner.took(r, reply["id"].as_str().unwrap_or_default());
                    json_reply(200, reply)
                }
            }
        }
        None => {
            inner.took(r, reply["id"].as_str().unwrap_or_default());
            json_reply(200, reply)
        }
    }
}

fn mailgun(inner: &Inner, r: &Received) -> Response {
    let Some(domain) = r.path.strip_prefix("/v3/").and_then(|p| p.strip_suffix("/messages")) else {
        return json_reply(404, json!({ "message": "Not Found" }));
    };
    let expected = format!("Basic {}", base64_basic("api", &inner.key));
    if r.header("authorization") != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, "Forbidden").into_response();
    }
    for field in ["from", "to", "subject"] {
        if r.field(field).is_empty() {
            return json_reply(400, json!({ "message": format!("'{field}' parameter is missing") }));
        }
    }
    if r.field("text").is_empty() && r.field("html").is_empty() {
        return json_reply(
            400,
            json!({ "message": "Need at least one of 'text', 'html', 'amp-html' or 'template' parameters specified" }),
        );
    }
    let id = format!(
        "<{}.{}@{domain}>",
        chrono::Utc::now().format("%Y%m%d%H%M%S"),
        uuid::Uuid::new_v4().simple()
    );
    inner.took(r, &id);
    json_reply(200, json!({ "id": id, "message": "Queued. Thank you." }))
}

fn ses(inner: &Inner, r: &Received, method: &str) -> Response {
    use postrunner_providers::secret::Secret;
    use postrunner_providers::ses::{sigv4_headers, AwsKeys, Unsigned};
    let error = |status: u16, kind: &str, message: &str| {
        let mut response = json_reply(status, json!({ "message": message }));
        response.headers_mut().insert(
            "x-amzn-ErrorType",
            format!("{kind}:http://internal.amazon.com/coral/com.amazonaws.sesv2/")
                .parse()
                .unwrap(),
        );
        response
    };
    if r.path != "/v2/email/outbound-emails"
        && r.path != "/v2/email/account"
        && !r.path.starts_with("/v2/email/suppression/addresses")
    {
        return error(404, "NotFoundException", "not found");
    }
    // Recompute the signature from what arrived, with the known secret.
    let keys = AwsKeys::parse(&Secret::new(inner.key.clone())).unwrap();
    let Some(time) = r
        .header("x-amz-date")
        .and_then(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y%m%dT%H%M%SZ").ok())
    else {
        return error(403, "InvalidSignatureException", "missing X-Amz-Date");
    };
    let time = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(time.and_utc().timestamp() as u64);
    let host = r.header("host").unwrap_or_default().to_owned();
    let url = format!("http://{host}{}", r.path);
    let expected = sigv4_headers(
        &keys,
        "us-east-1",
        "ses",
        time,
        &Unsigned {
            method,
            url: &url,
            headers: &[
                ("host", &host),
                ("content-type", r.header("content-type").unwrap_or_default()),
            ],
            body: r.body.as_bytes(),
        },
    )
    .unwrap();
    let authorization = expected
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.as_str());
    if r.header("authorization") != authorization {
        return error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    if method == "GET" && r.path.starts_with("/v2/email/suppression/addresses") {
        return ses_suppression_page(inner, &r.path);
    }
    if method == "GET" {
        return json_reply(200, json!({ "SendingEnabled": true, "ProductionAccessEnabled": true }));
    }
    let Some(body) = &r.json else {
        return error(400, "BadRequestException", "invalid JSON");
    };
    if body.pointer("/Destination/ToAddresses/0").is_none()
        || body.pointer("/Content/Simple/Subject/Data").is_none()
        || body.get("FromEmailAddress").is_none()
    {
        return error(400, "BadRequestException", "Missing required field");
    }
    if body.pointer("/Content/Simple/Body/Text").is_none() && body.pointer("/Content/Simple/Body/Html").is_none() {
        return error(400, "MessageRejected", "Email body is empty.");
    }
    let id = format!("0100{}-000000", uuid::Uuid::new_v4().simple());
    inner.took(r, &id);
    json_reply(200, json!({ "MessageId": id }))
}

/// `user:password` in base64, as HTTP Basic sends it.
fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
}
