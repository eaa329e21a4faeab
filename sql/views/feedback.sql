-- Reporting views over what providers reported back (sql/feedback/): suppressions
-- with their reason and source event, and events per provider and day, including
-- those for messages postrunner does not know. Part of the public interface
-- (sql/README.md); filtered by the reading login's client binding
-- (sql/security/tenancy.sql).
--
-- Locks: none (plain reads).

-- Every suppression, with what caused it: the event (provider, kind, when) for those
-- the feedback loop made, the detail for the rest (imports, the send-time refusals,
-- manual rows). `active` is false for a quarantine that has expired.
CREATE OR REPLACE VIEW postrunner.report_suppressions AS
SELECT s.client, s.address, s.reason, s.detail, s.created_at, s.expires_at,
       (s.expires_at IS NULL OR s.expires_at > now()) AS active,
       e.provider AS event_provider, e.kind AS event_kind, e.occurred_at AS event_at, s.event_id
  FROM postrunner.suppressions s
  LEFT JOIN postrunner.events e ON e.id = s.event_id
 WHERE (SELECT postrunner.may_act_for(NULL)) OR s.client = ANY ((SELECT postrunner.bound_clients())::text[]);

-- Events received per provider, UTC day and kind; `unmatched` counts those for no
-- message postrunner knows (another sender on the same account, or a deleted message).
CREATE OR REPLACE VIEW postrunner.report_events AS
SELECT e.provider, (e.received_at AT TIME ZONE 'UTC')::date AS day, e.kind, e.bounce_class,
       count(*) AS events,
       count(*) FILTER (WHERE e.message_id IS NULL) AS unmatched
  FROM postrunner.events e
 WHERE (SELECT postrunner.may_act_for(NULL)) OR e.client = ANY ((SELECT postrunner.bound_clients())::text[])
 GROUP BY 1, 2, 3, 4;
