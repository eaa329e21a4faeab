-- The sends under reservations $1 succeeded: their providers are up again if they were
-- degraded, and trial sends count towards closing a down provider's breaker. Runs in
-- the completion transaction, after record_sent.sql. See
-- postrunner.record_send_successes in sql/providers/breaker.sql.
SELECT postrunner.record_send_successes($1::bigint[])
