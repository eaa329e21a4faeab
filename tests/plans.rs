//! The hot statements keep their plan shape whatever the table statistics say: with the
//! statistics of a full queue (a 50,000-message backlog, ANALYZEd as autovacuum would),
//! no claim, completion, heartbeat, rescue or release scans a whole queue table. A plan
//! that hash-joins a batch against a sequential scan of `jobs` costs 25-30 ms a claim
//! instead of about 2 (issue 8).

use crate::support::db::exec;
use crate::support::db::TestDb;
use crate::support::factory;
use crate::support::factory::messages;
use crate::support::plans::{prepared, Explained};
use crate::support::routing::addresses;

/// The big tables of the queue: none may be scanned whole by a hot statement.
const BIG_TABLES: [&str; 4] = ["jobs", "outbox", "send_attempts", "address_usage"];

/// 50,000 jobs of postrunner's own waiting (the benchmark's no-op jobs), 200 running,
/// then ANALYZE: the table the review measured the claim collapsing on.
async fn a_backlog_of_jobs_with_statistics() -> TestDb {
    let db = TestDb::new().await;
    exec(
        &db.pool,
        "INSERT INTO postrunner.jobs (kind) SELECT 'noop' FROM generate_series(1, 50200);
         UPDATE postrunner.jobs SET state = 'running', leased_by = gen_random_uuid(),
                lease_token = '00000000-0000-0000-0000-000000000001', lease_expires_at = now() + interval '1 hour'
          WHERE id IN (SELECT id FROM postrunner.jobs ORDER BY id LIMIT 200);
         ANALYZE;",
    )
    .await;
    db
}

/// A working day's backlog of mail: 50,000 messages waiting in one lane behind 1,200
/// addresses, 50,000 messages of history with their ledger rows, 200 being sent; then
/// ANALYZE.
async fn a_backlog_of_messages_with_statistics() -> TestDb {
    let db = TestDb::new().await;
    let pool = &db.pool;
    factory::zoned_client(pool, "acme", "UTC", "d").await;
    exec(
        pool,
        "INSERT INTO postrunner.providers (name, kind, per_minute, monthly_budget, price_per_1000)
         VALUES ('p', 'log', 100000, 100000, 1)",
    )
    .await;
    addresses(pool, "acme", "p", 1200, 1000).await;
    messages(pool, "acme", "d", 100_200).await;
    exec(
        pool,
        // Half of the messages are history: sent, with their ledger rows.
        "SET session_replication_role = replica;
         WITH old AS (
             DELETE FROM postrunner.jobs WHERE id IN (SELECT job_id FROM postrunner.outbox ORDER BY job_id LIMIT 50000)
             RETURNING id)
         UPDATE postrunner.outbox o SET status = 'sent', sent_at = now(), provider = 'p', from_address = 'p-1@acme.test'
           FROM old WHERE o.job_id = old.id;
         INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address, day, reserved_at, outcome)
         SELECT id, job_id, 1, client, direction, 'p', 'p-1@acme.test', current_date, now(), 'sent'
           FROM postrunner.outbox WHERE status = 'sent';
         UPDATE postrunner.jobs SET state = 'running', leased_by = gen_random_uuid(),
                lease_token = '00000000-0000-0000-0000-000000000001', lease_expires_at = now() + interval '1 hour'
          WHERE id IN (SELECT id FROM postrunner.jobs ORDER BY id LIMIT 200);
         INSERT INTO postrunner.send_attempts (message_id, job_id, attempt, client, direction, provider, from_address, day, reserved_at)
         SELECT o.id, o.job_id, 1, o.client, o.direction, 'p', 'p-2@acme.test', current_date, now()
           FROM postrunner.outbox o JOIN postrunner.jobs j ON j.id = o.job_id WHERE j.state = 'running';
         SET session_replication_role = origin;
         ANALYZE;",
    )
    .await;
    db
}

/// Every plan's line that scans one of `tables` sequentially.
fn seq_scans(plans: &[String], tables: &[String]) -> Vec<String> {
    plans
        .iter()
        .flat_map(|plan| plan.lines())
        .filter(|line| {
            tables
                .iter()
                .any(|table| line.contains(&format!("Seq Scan on {table} ")))
        })
        .map(str::to_owned)
        .collect()
}

/// The big tables that the fixture filled (a sequential scan of an empty one is free).
async fn filled_tables(db: &TestDb) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
          WHERE relnamespace = 'postrunner'::regnamespace AND relname = ANY ($1) AND reltuples >= 1000",
    )
    .bind(BIG_TABLES.map(str::to_owned).to_vec())
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// The running jobs of `db` as SQL literals: (ids, tokens, count).
async fn running_jobs(db: &TestDb) -> (String, String, usize) {
    let running: Vec<i64> = sqlx::query_scalar("SELECT id FROM postrunner.jobs WHERE state = 'running' ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let ids = format!(
        "'{{{}}}'::bigint[]",
        running.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    );
    let tokens = format!(
        "array_fill('00000000-0000-0000-0000-000000000001'::uuid, ARRAY[{}])",
        running.len()
    );
    (ids, tokens, running.len())
}

/// The text of `sql/statements/<path>`, to prepare and EXPLAIN.
fn statement(path: &str) -> String {
    postrunner_schema::statements::text(path)
        .expect("a statement file")
        .to_owned()
}

const WORKER: &str = "'00000000-0000-0000-0000-0000000000aa'";

/// The statements every worker runs on the generic queue, with arguments for `db`.
async fn queue_statements(db: &TestDb) -> Vec<(&'static str, String, String)> {
    let (ids, tokens, n) = running_jobs(db).await;
    vec![
        (
            "generic claim",
            statement("queue/claim.sql"),
            format!("80, {WORKER}, gen_random_uuid(), '20s', NULL, -32768, NULL, -9223372036854775808"),
        ),
        ("lock the batch", statement("queue/lock_batch.sql"), ids.clone()),
        (
            "still leased",
            statement("queue/still_leased.sql"),
            format!("{ids}, {tokens}"),
        ),
        ("complete", statement("queue/complete.sql"), format!("{ids}, {tokens}")),
        (
            "fail",
            statement("queue/fail.sql"),
            format!(
                "{ids}, {tokens}, array_fill('retryable'::text, ARRAY[{n}]), array_fill(60::float8, ARRAY[{n}]), array_fill('x'::text, ARRAY[{n}]), NULL"
            ),
        ),
        (
            "heartbeat",
            statement("queue/heartbeat.sql"),
            format!("{WORKER}, '20s', {ids}, {tokens}"),
        ),
        (
            "release",
            statement("queue/release.sql"),
            format!("{ids}, {tokens}, array_fill(false, ARRAY[{n}])"),
        ),
        (
            "rescue",
            statement("queue/rescue_expired_leases.sql"),
            "now() + interval '2 hours'".to_owned(),
        ),
        ("promote", statement("queue/promote.sql"), "10000, NULL".to_owned()),
        (
            "when lanes may send",
            statement("routing/next_ready.sql"),
            "NULL, true".to_owned(),
        ),
    ]
}

/// Runs each statement prepared, with a generic and with a custom plan, and returns
/// every sequential scan of a queue table their plans contain.
async fn seq_scans_of(db: &TestDb, statements: &[(&str, String, String)]) -> Vec<String> {
    let session = Explained::connect(&db.url).await;
    let tables = filled_tables(db).await;
    let mut found = Vec::new();
    for (name, statement, args) in statements {
        // Outcomes are recorded once the job is gone (the completion deletes it first).
        let before = if *name == "record sent" {
            "DELETE FROM postrunner.jobs WHERE state = 'running'; SET LOCAL postrunner.internal = 'on';"
        } else {
            ""
        };
        for mode in ["force_generic_plan", "force_custom_plan"] {
            let plans = session
                .plans_of(&format!("{before}{}", prepared(statement, args, mode)))
                .await;
            if std::env::var_os("SHOW_PLANS").is_some() {
                eprintln!("=== {name} ({mode})\n{}", plans.join("\n"));
            }
            assert!(!plans.is_empty(), "{name}: auto_explain recorded no plan");
            found.extend(
                seq_scans(&plans, &tables)
                    .into_iter()
                    .map(|line| format!("{name} ({mode}): {line}")),
            );
        }
    }
    found
}

#[tokio::test]
#[ignore = "heavy (a 50,000-job fixture): bin/test runs it after the rest, alone"]
async fn the_queue_statements_scan_no_queue_table_whole_with_a_full_queues_statistics() {
    let db = a_backlog_of_jobs_with_statistics().await;
    let statements = queue_statements(&db).await;
    let found = seq_scans_of(&db, &statements).await;
    assert!(
        found.is_empty(),
        "sequential scans of queue tables:\n{}",
        found.join("\n")
    );
}

#[tokio::test]
#[ignore = "heavy (a 100,000-message fixture): bin/test runs it after the rest, alone"]
async fn the_routed_claim_and_its_records_scan_no_queue_table_whole_with_a_full_queues_statistics() {
    let db = a_backlog_of_messages_with_statistics().await;
    let (ids, _, n) = running_jobs(&db).await;
    let attempts: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM postrunner.send_attempts WHERE outcome = 'reserved' ORDER BY job_id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let attempt_ids = format!(
        "'{{{}}}'::bigint[]",
        attempts.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
    );
    let mut statements = queue_statements(&db).await;
    statements.push((
        "routed claim",
        statement("routing/claim.sql"),
        format!("80, {WORKER}, gen_random_uuid(), '20s', NULL, true"),
    ));
    statements.push((
        "record sent",
        statement("outbox/record_sent.sql"),
        format!(
            "{ids}, array_fill('p'::text, ARRAY[{n}]), array_fill('p-2@acme.test'::text, ARRAY[{n}]), array_fill('x'::text, ARRAY[{n}]), {attempt_ids}"
        ),
    ));
    statements.push((
        "close attempt",
        statement("outbox/close_attempt.sql"),
        format!("{}, true, 'x', 'provider'", attempts[0]),
    ));
    let found = seq_scans_of(&db, &statements).await;
    assert!(
        found.is_empty(),
        "sequential scans of queue tables:\n{}",
        found.join("\n")
    );
}

/// The ledger and the outbox only grow: no metric, status or cost read may scan them
/// whole (issue 11). With a day's history (50,000 sent messages and their ledger rows,
/// rolled up as the rollup task does) and their statistics, the database metrics
/// snapshot, the status summary and the cost report read both through indexes and the
/// rollups. (The live jobs and the addresses' usage are read whole by design: they are
/// the queue and the 1,200 addresses themselves.)
#[tokio::test]
#[ignore = "heavy (a 100,000-message fixture): bin/test runs it after the rest, alone"]
async fn the_metrics_status_and_cost_reads_scan_no_ledger_table_whole() {
    let db = a_backlog_of_messages_with_statistics().await;
    exec(
        &db.pool,
        "INSERT INTO postrunner.events (provider, dedupe_key, message_id, client, kind, bounce_class, occurred_at)
         SELECT 'p', 'b' || o.id, o.id, o.client, 'bounced', 'hard', now()
           FROM postrunner.outbox o WHERE o.status = 'sent' LIMIT 500;
         SELECT postrunner.rollup_sends(interval '0 seconds');
         ANALYZE;",
    )
    .await;
    let session = Explained::connect(&db.url).await;
    let ledger = ["outbox".to_owned(), "send_attempts".to_owned()];
    for (name, sql) in [
        ("metrics snapshot", "SELECT count(*) FROM postrunner.metrics_snapshot()"),
        ("status summary", "SELECT postrunner.status_summary()"),
        ("cost report", "SELECT count(*) FROM postrunner.report_cost"),
    ] {
        let plans = session.plans_of(sql).await;
        if std::env::var_os("SHOW_PLANS").is_some() {
            eprintln!("=== {name}\n{}", plans.join("\n"));
        }
        assert!(!plans.is_empty(), "{name}: auto_explain recorded no plan");
        let found = seq_scans(&plans, &ledger);
        assert!(
            found.is_empty(),
            "{name} scans a ledger table whole:\n{}",
            found.join("\n")
        );
    }
}
