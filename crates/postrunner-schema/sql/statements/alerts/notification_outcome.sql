-- Records how a system.notify job's notifications ($1) went: 'sent', or the error
-- ($3) of a failed attempt, 'failed' when it was the last ($2 = 'failed') and kept
-- 'queued' while retries remain. A sent notification stays sent.
UPDATE postrunner.notifications
   SET status = $2,
       sent_at = CASE WHEN $2 = 'sent' THEN now() END,
       last_error = $3
 WHERE id = ANY ($1::bigint[]) AND status <> 'sent'
