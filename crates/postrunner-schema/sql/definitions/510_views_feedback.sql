-- Reporting views over what providers reported back (sql/feedback/): suppressions
-- with their reason and source event, and events per provider and day, including
-- those for messages postrunner does not know. Part of the public interface
-- (sql/README.md); filtered by the reading login's client binding
-- (sql/definitions/470_security_tenancy.sql).
--
-- Locks: none (plain reads).
--
-- Every view here is a security barrier: a login's own WHERE clause (a cast that fails
-- on a value, a function of its own that prints its arguments) runs only on the rows
-- the view's filter lets through, never before it (tests/tenancy.rs,
-- no_view_a_bound_login_reads_leaks_another_clients_rows).

-- Every suppression, with what caused it: the event (provider, kind, when) for those
-- the feedback loop made, the detail for the rest (imports, the send-time refusals,
-- manual rows). `active` is false for a quarantine that has expired.
CREATE OR REPLACE VIEW postrunner.report_suppressions WITH (security_barrier) AS
SELECT s.client, s.address, s.reason, s.detail, s.created_at, s.expires_at,
       (s.expires_at IS NULL OR s.expires_at > now()) AS active,
       e.provider AS event_provider, e.kind AS event_kind, e.occurred_at AS event_at, s.event_id,
       s.message_id
  FROM postrunner.suppressions s
  LEFT JOIN postrunner.events e ON e.id = s.event_id
 WHERE (SELECT postrunner.may_act_for(NULL)) OR s.client = ANY ((SELECT postrunner.bound_clients())::text[]);

-- Events received per provider, UTC day and kind; `unmatched` counts those for no
-- message postrunner knows (another sender on the same account, or a deleted message).
CREATE OR REPLACE VIEW postrunner.report_events WITH (security_barrier) AS
SELECT e.provider, (e.received_at AT TIME ZONE 'UTC')::date AS day, e.kind, e.bounce_class,
       count(*) AS events,
       count(*) FILTER (WHERE e.message_id IS NULL) AS unmatched
  FROM postrunner.events e
 WHERE (SELECT postrunner.may_act_for(NULL)) OR e.client = ANY ((SELECT postrunner.bound_clients())::text[])
 GROUP BY 1, 2, 3, 4;

-- Bounce and complaint rates over the last 24 hours and 7 days, per sender address,
-- provider, direction and client (`level`, `name`; a direction's name is
-- client/direction): sends from the ledger, hard bounces and complaints from the
-- events of those messages. The numbers the automatic pauses act on
-- (sql/definitions/360_feedback_pauses.sql), though those count an address's last sends rather than
-- days.
CREATE OR REPLACE VIEW postrunner.report_bounce_rates WITH (security_barrier) AS
WITH sends AS (
    SELECT a.client, a.direction, a.provider, a.from_address, a.reserved_at AS at, NULL::postrunner.event_kind AS kind
      FROM postrunner.send_attempts a
     WHERE a.outcome = 'sent' AND a.reserved_at > now() - interval '7 days'
),
bad AS (
    SELECT o.client, o.direction, o.provider, o.from_address, e.occurred_at AS at, e.kind
      FROM postrunner.events e
      JOIN postrunner.outbox o ON o.id = e.message_id
     WHERE e.occurred_at > now() - interval '7 days'
       AND (e.kind = 'complained' OR (e.kind = 'bounced' AND e.bounce_class = 'hard'))
),
rows AS (
    SELECT * FROM sends UNION ALL SELECT * FROM bad
),
levels AS (
    SELECT 'address' AS level, r.from_address AS name, r.client AS bound, r.at, r.kind FROM rows r
    UNION ALL SELECT 'provider', r.provider, NULL, r.at, r.kind FROM rows r
    UNION ALL SELECT 'direction', r.client || '/' || r.direction, r.client, r.at, r.kind FROM rows r
    UNION ALL SELECT 'client', r.client, r.client, r.at, r.kind FROM rows r
)
SELECT level, name,
       count(*) FILTER (WHERE kind IS NULL AND at > now() - interval '24 hours')      AS sends_24h,
       count(*) FILTER (WHERE kind = 'bounced' AND at > now() - interval '24 hours')  AS bounces_24h,
       count(*) FILTER (WHERE kind = 'complained' AND at > now() - interval '24 hours') AS complaints_24h,
       round(count(*) FILTER (WHERE kind = 'bounced' AND at > now() - interval '24 hours')::numeric
             / nullif(count(*) FILTER (WHERE kind IS NULL AND at > now() - interval '24 hours'), 0), 4) AS bounce_rate_24h,
       count(*) FILTER (WHERE kind IS NULL)          AS sends_7d,
       count(*) FILTER (WHERE kind = 'bounced')      AS bounces_7d,
       count(*) FILTER (WHERE kind = 'complained')   AS complaints_7d,
       round(count(*) FILTER (WHERE kind = 'bounced')::numeric / nullif(count(*) FILTER (WHERE kind IS NULL), 0), 4) AS bounce_rate_7d,
       round(count(*) FILTER (WHERE kind = 'complained')::numeric / nullif(count(*) FILTER (WHERE kind IS NULL), 0), 4) AS complaint_rate_7d
  FROM levels x
 WHERE (SELECT postrunner.may_act_for(NULL)) OR (bound IS NOT NULL AND bound = ANY ((SELECT postrunner.bound_clients())::text[]))
 GROUP BY level, name;
