//! Every table, view, sequence and function of the schema against the privileges each
//! role is meant to have, so that a new object cannot silently be open to everyone
//! (PostgreSQL grants EXECUTE on a new function to PUBLIC by default;
//! sql/definitions/540_security_grants.sql revokes it and grants each role what it calls).

use std::collections::BTreeSet;

use crate::support::db::TestDb;

/// What the application role may do, beyond the schema's USAGE.
const APP: &[&str] = &[
    "table outbox SELECT",
    "table outbox INSERT",
    "column outbox.status UPDATE",
    "table clients SELECT",
    "table directions SELECT",
    "table client_logins SELECT",
    "table report_outbox SELECT",
    "function retry_message(message_id uuid) EXECUTE",
    "function may_act_for(p_client text) EXECUTE",
    "function bound_clients() EXECUTE",
    "function acts_as_service() EXECUTE",
    "function reject(message text, hint text DEFAULT NULL::text, code text DEFAULT 'check_violation'::text) EXECUTE",
];

/// What the reporting role may do: the reports, and the helpers they call as it.
const READER: &[&str] = &[
    "table report_alerts SELECT",
    "table report_blocked SELECT",
    "table report_bounce_rates SELECT",
    "table report_capacity SELECT",
    "table report_capacity_rollup SELECT",
    "table report_cost SELECT",
    "table report_daily_volume SELECT",
    "table report_domains SELECT",
    "table report_events SELECT",
    "table report_notifications SELECT",
    "table report_outbox SELECT",
    "table report_provider_health SELECT",
    "table report_queue SELECT",
    "table report_suppressions SELECT",
    "table workers SELECT",
    "table settings SELECT",
    "table client_logins SELECT",
    "function may_act_for(p_client text) EXECUTE",
    "function bound_clients() EXECUTE",
    "function acts_as_service() EXECUTE",
    "function effective_daily_limit(daily_limit integer, warmup_started_on date, on_day date) EXECUTE",
    "function warmup_limit(day_index integer) EXECUTE",
    "function setting_number(p_name text, fallback double precision) EXECUTE",
    "function local_day(at timestamp with time zone, tz text) EXECUTE",
    "function counts_as_sent(outcome postrunner.attempt_outcome) EXECUTE",
    "function breaker_cooldown() EXECUTE",
    "function utc_month(at timestamp with time zone) EXECUTE",
    "function monthly_sends(p_from date) EXECUTE",
];

/// Every privilege `role` holds on the schema's objects, one line each.
async fn privileges_of(db: &TestDb, role: &str) -> BTreeSet<String> {
    sqlx::query_scalar(
        "WITH objects AS (
             SELECT 'table' AS kind, c.oid, c.relname::text AS name, p.privilege
               FROM pg_class c
              CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS p(privilege)
              WHERE c.relnamespace = 'postrunner'::regnamespace AND c.relkind IN ('r', 'v', 'p')
                AND has_table_privilege($1, c.oid, p.privilege)
             UNION ALL
             SELECT 'column', c.oid, c.relname || '.' || a.attname, p.privilege
               FROM pg_class c
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE']) AS p(privilege)
              WHERE c.relnamespace = 'postrunner'::regnamespace AND c.relkind IN ('r', 'v', 'p')
                AND has_column_privilege($1, c.oid, a.attnum, p.privilege)
                AND NOT has_table_privilege($1, c.oid, p.privilege)
             UNION ALL
             SELECT 'sequence', c.oid, c.relname::text, p.privilege
               FROM pg_class c
              CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p(privilege)
              WHERE c.relnamespace = 'postrunner'::regnamespace AND c.relkind = 'S'
                AND has_sequence_privilege($1, c.oid, p.privilege)
             UNION ALL
             SELECT 'function', f.oid, f.proname || '(' || pg_get_function_arguments(f.oid) || ')', 'EXECUTE'
               FROM pg_proc f
              WHERE f.pronamespace = 'postrunner'::regnamespace
                AND has_function_privilege($1, f.oid, 'EXECUTE')
         )
         SELECT kind || ' ' || name || ' ' || privilege FROM objects",
    )
    .bind(role)
    .fetch_all(&db.pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// Every object of the schema (the service role must reach all of them).
async fn object_count(db: &TestDb) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'postrunner'::regnamespace AND relkind IN ('r', 'v', 'p')),
                (SELECT count(*) FROM pg_proc WHERE pronamespace = 'postrunner'::regnamespace)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|l| (*l).to_owned()).collect()
}

#[tokio::test]
async fn each_role_holds_exactly_its_privileges_on_every_object() {
    let db = TestDb::new().await;

    let public = privileges_of(&db, "public").await;
    assert!(public.is_empty(), "PUBLIC may do nothing in the schema: {public:#?}");

    for (role, expected) in [("postrunner_app", APP), ("postrunner_reader", READER)] {
        let actual = privileges_of(&db, role).await;
        let expected = set(expected);
        let extra: Vec<_> = actual.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&actual).collect();
        assert!(
            extra.is_empty() && missing.is_empty(),
            "{role}: granted but not expected {extra:#?}; expected but not granted {missing:#?}"
        );
    }

    let service = privileges_of(&db, "postrunner_service").await;
    let (relations, functions) = object_count(&db).await;
    let tables = service
        .iter()
        .filter(|l| l.starts_with("table ") && l.ends_with(" SELECT"))
        .count() as i64;
    let executable = service.iter().filter(|l| l.starts_with("function ")).count() as i64;
    assert_eq!(
        (tables, executable),
        (relations, functions),
        "the processes reach every object"
    );

    let schema_usage: Vec<(String, bool)> = sqlx::query_as(
        "SELECT r, has_schema_privilege(r, 'postrunner', 'USAGE')
           FROM unnest(ARRAY['public', 'postrunner_app', 'postrunner_reader', 'postrunner_service']) AS r",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        schema_usage,
        [
            ("public".to_owned(), false),
            ("postrunner_app".to_owned(), true),
            ("postrunner_reader".to_owned(), true),
            ("postrunner_service".to_owned(), true)
        ]
    );
}
