-- What one system.notify job sends: its channel ($1) and notifications ($2), each with
-- its alert, oldest first. Read without locks: only this job writes these rows.
SELECT n.id, n.transition, n.status, a.kind, a.subject, a.detail, a.fired_at, a.resolved_at,
       c.kind AS channel_kind, c.target AS channel_target, c.config AS channel_config
  FROM postrunner.notifications n
  JOIN postrunner.alerts a ON a.id = n.alert_id
  JOIN postrunner.notification_channels c ON c.name = n.channel
 WHERE n.channel = $1 AND n.id = ANY ($2::bigint[])
 ORDER BY n.id
