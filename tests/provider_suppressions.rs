//! The providers' own suppression lists read back into postrunner.suppressions (after a
//! restore): each provider's list API as it serves it (SendGrid's paged arrays, Mailgun's
//! per-domain lists with paging links, Postmark's dump, SES's signed, NextToken-paged
//! account list), applied to every client sending through the provider, never in clear
//! for a person a client erased, idempotent, and a provider whose list cannot be read
//! reported without stopping the others.

use postrunner_feedback::provider_suppressions::{pull, PullOutcome};
use postrunner_providers::Directory;

use crate::support::db::TestDb;
use crate::support::fake_provider::Fleet;

#[tokio::test]
async fn every_providers_list_is_read_into_its_clients_suppressions() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let fleet = Fleet::start().await;
    let mut rows = fleet.rows.clone();
    rows.push("('broken', 'sendgrid', 'http://127.0.0.1:9', 'PR_TEST_UNSET_VARIABLE', NULL)".to_owned());
    sqlx::raw_sql(&format!(
        "INSERT INTO postrunner.clients (name, bulk) VALUES ('acme', false), ('globex', false);
         INSERT INTO postrunner.providers (name, kind, endpoint, secret_env, region) VALUES {};
         INSERT INTO postrunner.sender_addresses (address, provider, client, daily_limit) VALUES
             ('a@acme.test', 'sg', 'acme', 100), ('g@globex.test', 'sg', 'globex', 100),
             ('a2@acme.test', 'mg', 'acme', 100), ('a3@acme.test', 'pm', 'acme', 100),
             ('a4@acme.test', 'ses', 'acme', 100), ('a5@acme.test', 'rs', 'acme', 100),
             ('a6@acme.test', 'broken', 'acme', 100);",
        rows.join(", ")
    ))
    .execute(pool)
    .await
    .unwrap();
    // Jane was erased for acme: her hashed suppression stands, no copy in clear.
    sqlx::raw_sql(
        "INSERT INTO postrunner.suppressions (client, address, reason) VALUES ('acme', 'jane@example.org', 'unsubscribe');
         SELECT postrunner.erase_recipient('acme', 'jane@example.org');",
    )
    .execute(pool)
    .await
    .unwrap();

    let fake = |name: &str| fleet.get(name);
    fake("sg").set_suppressed(&[
        ("bounced@example.org", "hard_bounce"),
        ("angry@example.org", "complaint"),
        ("bye@example.org", "unsubscribe"),
        ("jane@example.org", "unsubscribe"),
    ]);
    fake("mg").set_suppressed(&[
        ("mg-bounce@example.org", "hard_bounce"),
        ("mg-bye@example.org", "unsubscribe"),
    ]);
    fake("pm").set_suppressed(&[
        ("pm-angry@example.org", "complaint"),
        ("pm-manual@example.org", "unsubscribe"),
    ]);
    fake("ses").set_suppressed(&[
        ("ses-1@example.org", "hard_bounce"),
        ("ses-2@example.org", "complaint"),
        ("ses-3@example.org", "hard_bounce"),
    ]);
    fake("rs").set_suppressed(&[("never-read@example.org", "hard_bounce")]);

    let directory = Directory::new(pool.clone());
    let pulled = pull(pool, &directory).await.unwrap();
    let outcome = |name: &str| {
        let p = pulled.iter().find(|p| p.provider == name).unwrap();
        match &p.outcome {
            PullOutcome::Applied { listed, added } => format!("{listed}/{added}"),
            PullOutcome::NoList => "none".to_owned(),
            PullOutcome::Failed(e) => format!("failed: {e}"),
        }
    };
    // sg's four go to both its clients, except Jane for acme: 4 + 3.
    assert_eq!(outcome("sg"), "4/7");
    assert_eq!(outcome("mg"), "2/2");
    assert_eq!(outcome("pm"), "2/2");
    assert_eq!(outcome("ses"), "3/3", "three pages of SES's NextToken");
    assert_eq!(outcome("rs"), "none");
    assert!(outcome("broken").starts_with("failed") && outcome("broken").contains("PR_TEST_UNSET_VARIABLE"));

    let reasons: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT client, address, reason::text FROM postrunner.suppressions
          WHERE detail LIKE '%suppression list' ORDER BY client, address",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let has = |client: &str, address: &str, reason: &str| {
        reasons.contains(&(client.to_owned(), address.to_owned(), reason.to_owned()))
    };
    assert!(has("acme", "bounced@example.org", "hard_bounce"));
    assert!(has("globex", "angry@example.org", "complaint"));
    assert!(has("acme", "bye@example.org", "unsubscribe"));
    assert!(has("acme", "mg-bounce@example.org", "hard_bounce"));
    assert!(has("acme", "pm-manual@example.org", "unsubscribe"));
    assert!(has("acme", "ses-2@example.org", "complaint"));
    assert!(!reasons.iter().any(|(_, a, _)| a == "never-read@example.org"));
    let jane_in_clear: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM postrunner.suppressions WHERE client = 'acme' AND lower(address) = 'jane@example.org'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(jane_in_clear, 0, "an erased person never comes back in clear");
    assert!(
        has("globex", "jane@example.org", "unsubscribe"),
        "globex did not erase her"
    );

    // Read again: nothing new.
    let again = pull(pool, &directory).await.unwrap();
    assert!(again.iter().all(|p| matches!(
        p.outcome,
        PullOutcome::Applied { added: 0, .. } | PullOutcome::NoList | PullOutcome::Failed(_)
    )));
}
