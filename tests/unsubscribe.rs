//! One-click unsubscribe (RFC 8058): a worker signs each message's link into its
//! headers and bodies, and `postrunner web` honours it: the POST (either encoding)
//! suppresses the recipient for the client, once, committed before the 200; the GET
//! page changes nothing; tampered, foreign and malformed tokens get a 400.

use std::sync::Arc;
use std::time::Duration;

use postrunner::kinds;
use postrunner::unsubscribe::{UnsubscribeKeys, UnsubscribeLinks};
use postrunner_providers::secret::Secret;
use postrunner_providers::sendgrid::SendGrid;
use postrunner_providers::{http, Directory, Provider};
use postrunner_queue::executor::ExecutorConfig;
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::db::TestDb;
use crate::support::db::{count, exec};
use crate::support::fake_provider::{FakeProvider, Kind};
use crate::support::run::{fast_config, spawn};
use crate::support::wait_for_count;
use crate::support::webhooks::serve_with;

const KEY: &[u8] = b"an unsubscribe key of 32 bytes or more, for tests";
const OLD_KEY: &[u8] = b"the key before the rotation, also 32 bytes or more";

fn keys() -> UnsubscribeKeys {
    UnsubscribeKeys::new(KEY, Some(OLD_KEY)).unwrap()
}

/// The web role with unsubscribe links configured; its base URL.
async fn web(pool: &PgPool) -> String {
    serve_with(
        pool,
        postrunner::web::WebConfig {
            unsubscribe: Some(keys()),
            ..Default::default()
        },
    )
    .await
}

/// Client acme ("Acme Outreach" on its page) sending through the SendGrid simulator.
async fn acme(pool: &PgPool) -> FakeProvider {
    exec(
        pool,
        "INSERT INTO postrunner.clients (name, display_name) VALUES ('acme', 'Acme Outreach'), ('globex', NULL);
         INSERT INTO postrunner.directions (client, name) VALUES ('acme', 'd'), ('globex', 'd');
         INSERT INTO postrunner.providers (name, kind) VALUES ('sg', 'sendgrid');
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit)
         VALUES ('alice@mail.acme.test', 'sg', 'acme', 10000000), ('bob@mail.globex.test', 'sg', 'globex', 10000000);",
    )
    .await;
    FakeProvider::start(Kind::SendGrid, "sg-key").await
}

/// Sends one message of `client` to `to` through `fake` with links under `base`.
async fn send(pool: &PgPool, fake: &FakeProvider, base: &str, client: &str, to: &str) -> Uuid {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, html_body)
         VALUES ($1, 'd', $2, 'Hello', 'Hi. Unsubscribe: {{unsubscribe_url}}',
                 '<p>Hi. <a href=\"{{unsubscribe_url}}\">Unsubscribe</a></p>') RETURNING id",
    )
    .bind(client)
    .bind(to)
    .fetch_one(pool)
    .await
    .unwrap();
    let url = fake.url.clone();
    let directory = Directory::with_builder(pool.clone(), move |name| {
        let adapter: Arc<dyn Provider> = Arc::new(SendGrid::new(
            name,
            &url,
            Secret::new("sg-key".to_owned()),
            http::client(Duration::from_secs(5)),
        ));
        Some(adapter)
    });
    let links = UnsubscribeLinks::new(base, UnsubscribeKeys::new(KEY, None).unwrap());
    let registry = kinds::registry_with(pool.clone(), Arc::new(directory), Some(links));
    let config = ExecutorConfig {
        signs_unsubscribe: true,
        ..fast_config()
    };
    let worker = spawn(pool, registry, config);
    wait_for_count(
        pool,
        &format!("SELECT count(*) FROM postrunner.outbox WHERE id = '{id}' AND status IN ('sent', 'suppressed')"),
        1,
        Duration::from_secs(20),
    )
    .await;
    worker.stop().await;
    id
}

/// The link in the last request the simulator received, checked to be the same in
/// the header and both bodies.
fn link_sent(fake: &FakeProvider) -> String {
    let request = fake.received().pop().unwrap();
    let body = request.json.unwrap();
    let header = body["headers"]["List-Unsubscribe"].as_str().unwrap().to_owned();
    let url = header.trim_matches(|c| c == '<' || c == '>').to_owned();
    let contents: Vec<String> = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        contents.iter().all(|c| c.contains(&url) && !c.contains("{{")),
        "{contents:?}"
    );
    assert_eq!(body["headers"]["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
    url
}

async fn one_click(url: &str, content_type: &str, body: String) -> (u16, String) {
    let response = crate::support::http_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn suppressions(pool: &PgPool) -> Vec<(String, String, String, Option<Uuid>)> {
    sqlx::query_as(
        "SELECT client, address, reason::text, message_id FROM postrunner.report_suppressions ORDER BY client, address",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_sent_message_carries_its_signed_link_and_one_click_unsubscribes_once() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let fake = acme(pool).await;
    let base = web(pool).await;
    let id = send(pool, &fake, &base, "acme", "Jane@Example.org").await;
    let url = link_sent(&fake);
    assert!(url.starts_with(&format!("{base}/u/{}.", id.simple())), "{url}");
    assert!(!url.to_lowercase().contains("jane"), "no address in the link");

    // The page names the client and changes nothing (scanners fetch links).
    let page = crate::support::get(&url).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Acme Outreach") && html.contains("<button"), "{html}");
    assert!(html.contains("J***@Example.org"), "{html}");
    assert!(suppressions(pool).await.is_empty());

    // RFC 8058's POST, as a mail client sends it; then again (idempotent).
    for _ in 0..2 {
        let (status, _) = one_click(
            &url,
            "application/x-www-form-urlencoded",
            "List-Unsubscribe=One-Click".into(),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(
        suppressions(pool).await,
        [(
            "acme".to_owned(),
            "Jane@Example.org".to_owned(),
            "unsubscribe".to_owned(),
            Some(id)
        )]
    );
    // A later message to her from acme is never sent.
    let later = send(pool, &fake, &base, "acme", "jane@example.org").await;
    assert_eq!(
        count(
            pool,
            &format!("SELECT count(*) FROM postrunner.outbox WHERE id = '{later}' AND status = 'suppressed'")
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_multipart_one_click_post_works_too_and_a_post_without_it_changes_nothing() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let fake = acme(pool).await;
    let base = web(pool).await;
    send(pool, &fake, &base, "acme", "jane@example.org").await;
    let url = link_sent(&fake);

    let (status, _) = one_click(
        &url,
        "application/x-www-form-urlencoded",
        "List-Unsubscribe=Maybe".into(),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = one_click(&url, "text/plain", "List-Unsubscribe=One-Click".into()).await;
    assert_eq!(status, 400, "not a form");
    assert!(suppressions(pool).await.is_empty());

    let boundary = "----postrunner-test-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--{boundary}--\r\n"
    );
    let (status, html) = one_click(&url, &format!("multipart/form-data; boundary={boundary}"), body).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(suppressions(pool).await.len(), 1);
}

#[tokio::test]
async fn tampered_foreign_and_malformed_tokens_get_a_400_and_change_nothing() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let fake = acme(pool).await;
    let base = web(pool).await;
    let jane = send(pool, &fake, &base, "acme", "jane@example.org").await;
    let jane_url = link_sent(&fake);
    let joe = send(pool, &fake, &base, "globex", "joe@example.org").await;
    let joe_url = link_sent(&fake);
    let joe_tag = joe_url.rsplit_once('.').unwrap().1;

    let other_key = UnsubscribeKeys::new(b"somebody else's key, 32 bytes or more", None).unwrap();
    // The tag's last character changed.
    let flipped = if jane_url.ends_with('A') { 'B' } else { 'A' };
    let tampered = format!("{}{flipped}", &jane_url[..jane_url.len() - 1]);
    let cases = [
        // Jane's message with Joe's (valid, but foreign) tag.
        format!("{base}/u/{}.{joe_tag}", jane.simple()),
        // Signed with a key this server does not hold.
        format!("{base}/u/{}", other_key.token(jane, "acme", "jane@example.org")),
        // Signed for another recipient of the same message's client.
        format!("{base}/u/{}", keys().token(jane, "acme", "joe@example.org")),
        tampered,
        format!("{base}/u/not-a-token"),
        format!("{base}/u/{}.{joe_tag}", Uuid::new_v4().simple()),
    ];
    for url in &cases {
        let (status, html) = one_click(
            url,
            "application/x-www-form-urlencoded",
            "List-Unsubscribe=One-Click".into(),
        )
        .await;
        assert_eq!(status, 400, "{url}: {html}");
        assert!(html.contains("not valid"), "{html}");
        assert_eq!(crate::support::get(url).await.unwrap().status().as_u16(), 400, "{url}");
    }
    // Random tokens, well-shaped or not: a 400 (never a 5xx, never a crash).
    use rand::Rng as _;
    let mut rng = rand::thread_rng();
    for i in 0..60 {
        let junk: String = (0..rng.gen_range(0..80))
            .map(|_| rng.sample(rand::distributions::Alphanumeric) as char)
            .collect();
        let token = if i % 2 == 0 {
            format!("{}.{junk}", Uuid::new_v4().simple())
        } else {
            junk
        };
        let (status, _) = one_click(
            &format!("{base}/u/{token}"),
            "application/x-www-form-urlencoded",
            "List-Unsubscribe=One-Click".into(),
        )
        .await;
        assert!(
            status == 400 || (token.is_empty() && status == 404),
            "{token}: {status}"
        );
    }
    assert!(suppressions(pool).await.is_empty());
    let _ = joe;
}

#[tokio::test]
async fn a_link_signed_with_the_previous_key_still_works_after_a_rotation() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    acme(pool).await;
    let base = web(pool).await;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
         VALUES ('acme', 'd', 'kim@example.org', 'Hello', 'Hi') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let before_rotation = UnsubscribeKeys::new(OLD_KEY, None).unwrap();
    let url = format!("{base}/u/{}", before_rotation.token(id, "acme", "kim@example.org"));
    let (status, _) = one_click(
        &url,
        "application/x-www-form-urlencoded",
        "List-Unsubscribe=One-Click".into(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(suppressions(pool).await.len(), 1);
}

#[tokio::test]
async fn without_keys_the_web_role_has_no_unsubscribe_route() {
    let db = TestDb::new().await;
    let base = crate::support::webhooks::serve(&db.pool).await;
    let status = crate::support::get(format!("{base}/u/{}.abc", Uuid::new_v4().simple()))
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_worker_asked_for_unsubscribe_links_without_a_key_refuses_to_start() {
    let db = TestDb::new().await;
    let mut worker =
        crate::support::run::Process::spawn(&db.url, &["worker", "--unsubscribe-url", "https://mail.acme.test"]);
    let status = tokio::time::timeout(Duration::from_secs(30), worker.child.wait())
        .await
        .expect("it exits")
        .unwrap();
    assert!(!status.success());
    assert!(
        worker.logs().contains("POSTRUNNER_UNSUBSCRIBE_KEY"),
        "{}",
        worker.logs()
    );
}

/// Runs tests/support/browser.py (Selenium and Chromium) on `url`; what the page said
/// before and after its button was clicked. Screenshots go to `dir`.
fn in_a_browser(url: &str, dir: &std::path::Path) -> serde_json::Value {
    crate::support::python::run("browser.py", &serde_json::json!({"url": url, "dir": dir}))
}

#[tokio::test]
async fn a_person_unsubscribes_from_the_page_in_a_real_browser() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let fake = acme(pool).await;
    let base = web(pool).await;
    let id = send(pool, &fake, &base, "acme", "jane@example.org").await;
    let url = link_sent(&fake);
    // Kept as the test's artifact: target/test-artifacts/unsubscribe/*.png
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/unsubscribe");
    let url_for_browser = url.clone();
    let dir_for_browser = dir.clone();
    let seen = tokio::task::spawn_blocking(move || in_a_browser(&url_for_browser, &dir_for_browser))
        .await
        .unwrap();
    let (before, after) = (seen["before"].as_str().unwrap(), seen["after"].as_str().unwrap());
    assert!(
        before.contains("Acme Outreach") && before.contains("Unsubscribe"),
        "{before}"
    );
    assert!(
        after.contains("You are unsubscribed") && after.contains("Acme Outreach"),
        "{after}"
    );
    for png in ["unsubscribe-page.png", "unsubscribe-confirmed.png"] {
        let bytes = std::fs::read(dir.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 1000, "{png}");
    }
    assert_eq!(
        suppressions(pool).await,
        [(
            "acme".to_owned(),
            "jane@example.org".to_owned(),
            "unsubscribe".to_owned(),
            Some(id)
        )]
    );
}

#[tokio::test]
async fn a_bulk_clients_messages_wait_for_a_worker_that_signs_links() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let fake = acme(pool).await;
    // acme sends bulk mail (the default); globex only transactional mail.
    exec(pool, "UPDATE postrunner.clients SET bulk = false WHERE name = 'globex'").await;
    let enqueue = |client: &'static str, to: &'static str| async move {
        sqlx::query_scalar::<_, Uuid>(
            "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body)
             VALUES ($1, 'd', $2, 'Hello', 'Hi') RETURNING id",
        )
        .bind(client)
        .bind(to)
        .fetch_one(pool)
        .await
        .unwrap()
    };
    let bulk = enqueue("acme", "jane@example.org").await;
    let transactional = enqueue("globex", "joe@example.org").await;

    // A worker without unsubscribe links sends globex's message and leaves acme's.
    let url = fake.url.clone();
    let directory = move |pool: &PgPool| {
        let url = url.clone();
        Arc::new(Directory::with_builder(pool.clone(), move |name| {
            let adapter: Arc<dyn Provider> = Arc::new(SendGrid::new(
                name,
                &url,
                Secret::new("sg-key".to_owned()),
                http::client(Duration::from_secs(5)),
            ));
            Some(adapter)
        }))
    };
    let plain = spawn(pool, kinds::registry(pool.clone(), directory(pool)), fast_config());
    let sent = |id: Uuid| format!("SELECT count(*) FROM postrunner.outbox WHERE id = '{id}' AND status = 'sent'");
    wait_for_count(pool, &sent(transactional), 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    plain.stop().await;
    assert_eq!(fake.received().len(), 1);
    let status: String = sqlx::query_scalar("SELECT status::text FROM postrunner.outbox WHERE id = $1")
        .bind(bulk)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(status, "queued");
    let blocked: Vec<(String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT client, waiting_for, detail FROM postrunner.report_blocked ORDER BY client")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(blocked[0].0, "acme");
    assert_eq!(blocked[0].1.as_deref(), Some("unsubscribe"));
    assert!(
        blocked[0].2.as_deref().unwrap().contains("--unsubscribe-url"),
        "{blocked:?}"
    );
    assert_eq!((blocked[1].0.as_str(), blocked[1].1.as_deref()), ("globex", None));

    // A worker that signs registers as such (the report no longer blames unsubscribe)
    // and sends acme's message with its headers.
    let presence =
        postrunner::roles::presence::Presence::new("worker", Some(8), Duration::from_secs(5)).signing_unsubscribe(true);
    presence.register(pool).await.unwrap();
    let config = ExecutorConfig {
        signs_unsubscribe: true,
        ..fast_config()
    };
    let signing = spawn(
        pool,
        kinds::registry_with(pool.clone(), directory(pool), Some(links_for_test())),
        config,
    );
    wait_for_count(pool, &sent(bulk), 1, Duration::from_secs(20)).await;
    signing.stop().await;
    let request = fake.received().pop().unwrap().json.unwrap();
    assert_eq!(
        request["headers"]["List-Unsubscribe-Post"],
        "List-Unsubscribe=One-Click"
    );
    let link = links_for_test().url(bulk, "acme", "jane@example.org");
    assert_eq!(request["headers"]["List-Unsubscribe"], format!("<{link}>"));
    let reason: Option<String> =
        sqlx::query_scalar("SELECT waiting_for FROM postrunner.report_blocked WHERE client = 'acme'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(reason, None);
}

#[tokio::test]
async fn a_clients_mailbox_is_advertised_and_its_footer_carries_the_link() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let fake = acme(pool).await;
    exec(
        pool,
        "UPDATE postrunner.clients
            SET unsubscribe_mailto = 'unsubscribe@acme.test',
                unsubscribe_footer = 'You get this because you met Acme. Unsubscribe: {{unsubscribe_url}}'
          WHERE name = 'acme'",
    )
    .await;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO postrunner.outbox (client, direction, to_address, subject, text_body, html_body)
         VALUES ('acme', 'd', 'jane@example.org', 'Hello', 'Hi Jane', '<html><body><p>Hi Jane</p></body></html>')
         RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let links = links_for_test();
    let url = fake.url.clone();
    let directory = Directory::with_builder(pool.clone(), move |name| {
        let adapter: Arc<dyn Provider> = Arc::new(SendGrid::new(
            name,
            &url,
            Secret::new("sg-key".to_owned()),
            http::client(Duration::from_secs(5)),
        ));
        Some(adapter)
    });
    let config = ExecutorConfig {
        signs_unsubscribe: true,
        ..fast_config()
    };
    let worker = spawn(
        pool,
        kinds::registry_with(pool.clone(), Arc::new(directory), Some(links.clone())),
        config,
    );
    wait_for_count(
        pool,
        &format!("SELECT count(*) FROM postrunner.outbox WHERE id = '{id}' AND status = 'sent'"),
        1,
        Duration::from_secs(20),
    )
    .await;
    worker.stop().await;

    let body = fake.received().pop().unwrap().json.unwrap();
    let link = links.url(id, "acme", "jane@example.org");
    let token = link.rsplit('/').next().unwrap();
    assert_eq!(
        body["headers"]["List-Unsubscribe"],
        format!("<{link}>, <mailto:unsubscribe@acme.test?subject=unsubscribe%20{token}>")
    );
    assert_eq!(body["headers"]["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
    let contents: Vec<&str> = body["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        contents[0],
        format!("Hi Jane\n\nYou get this because you met Acme. Unsubscribe: {link}\n")
    );
    assert!(
        contents[1].ends_with(&format!(
            "<p class=\"unsubscribe\">You get this because you met Acme. Unsubscribe: <a href=\"{link}\">{link}</a></p></body></html>"
        )),
        "{}",
        contents[1]
    );
}

fn links_for_test() -> UnsubscribeLinks {
    UnsubscribeLinks::new("https://mail.acme.test", keys())
}

/// Issue 18, 3.3: after a person is erased (GDPR), the address their old one-click link
/// was signed for is gone. The link still says they are unsubscribed (they are kept from
/// mail for good), on the page and to a mail client's POST, instead of the "not valid"
/// page; and nothing about them is written.
#[tokio::test]
async fn an_erased_persons_old_link_says_they_are_unsubscribed() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let fake = acme(pool).await;
    let base = web(pool).await;
    send(pool, &fake, &base, "acme", "jane@example.org").await;
    let url = link_sent(&fake);
    sqlx::query("SELECT postrunner.erase_recipient('acme', 'jane@example.org')")
        .execute(pool)
        .await
        .unwrap();

    let page = crate::support::get(&url).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("You are unsubscribed") && html.contains("Acme Outreach") && !html.contains("<button"),
        "{html}"
    );
    let (status, html) = one_click(
        &url,
        "application/x-www-form-urlencoded",
        "List-Unsubscribe=One-Click".into(),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("You are unsubscribed") && !html.contains("jane"),
        "{html}"
    );
    assert!(
        suppressions(pool).await.is_empty(),
        "the erasure keeps her from mail, as a hash"
    );
}
