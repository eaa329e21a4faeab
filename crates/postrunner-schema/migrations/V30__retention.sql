-- Retention of the operational tables that grow with time but that nothing reads past
-- a few hours: provider probes (one provider probed every 30 s is 1M rows a year), the
-- provider health history, and resolved alerts with their notifications. The hourly
-- cleanup applies these settings (sql/statements/retention/prune.sql); the ledger, the
-- events and the outbox, which limits, costs, verify, erasures and uncertain sends read,
-- are not touched here.
INSERT INTO postrunner.settings (name, value, note, type, min_value, max_value) VALUES
    ('probe_retention_days', '14',
     'provider probes older than this many days are deleted by the hourly cleanup', 'integer', 1, 3650),
    ('health_history_retention_days', '180',
     'provider health changes older than this many days are deleted by the hourly cleanup', 'integer', 1, 3650),
    ('alert_retention_days', '180',
     'alerts resolved more than this many days ago are deleted, with their notifications, by the hourly cleanup',
     'integer', 1, 3650);

-- The cleanup deletes oldest first, across providers.
CREATE INDEX provider_probes_at_idx ON postrunner.provider_probes (at);
CREATE INDEX provider_health_history_at_idx ON postrunner.provider_health_history (at);
CREATE INDEX alerts_resolved_at_idx ON postrunner.alerts (resolved_at) WHERE state = 'resolved';
-- Deleting an alert deletes its notifications (ON DELETE CASCADE): by this index, not
-- a scan per alert.
CREATE INDEX notifications_alert_idx ON postrunner.notifications (alert_id);
