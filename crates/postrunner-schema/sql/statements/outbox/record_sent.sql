-- Record accepted messages: for each i, the message of job $1[i] was accepted by
-- provider $2[i] from address $3[i] with the provider's id $4[i], under reservation
-- $5[i] of postrunner.send_attempts. The time recorded is the database's, as every
-- other time in the ledger: a worker's own clock may be stepped (tests/chaos.rs,
-- chaos_clock_step_on_one_worker), and it is the time the acceptance was recorded,
-- moments after the provider's answer. Runs in the completion transaction,
-- after complete.sql, and only for the jobs that really completed (their lease was
-- still theirs). The outbox status guard accepts 'sent' once the job is gone from the
-- postrunner_service role only (sql/definitions/160_outbox_status_guard.sql).
--
-- A provider's event can arrive before the completion (a fast webhook): the status is
-- then the furthest the message's events give (sql/definitions/330_feedback_record_events.sql).
--
-- The same statement counts the sends as their providers' successes (a degraded
-- provider is up again; trial sends count towards closing a down one's breaker:
-- postrunner.record_send_successes in sql/definitions/220_providers_breaker.sql), one round trip less.
WITH ledger AS (
    UPDATE postrunner.send_attempts AS a
       SET outcome = 'sent', finished_at = now()
     WHERE a.id = ANY ($5::bigint[])
),
health AS (
    SELECT postrunner.record_send_successes($5::bigint[])
)
UPDATE postrunner.outbox AS o
   SET status = coalesce(postrunner.status_from_events(o.id), 'sent'),
       provider = s.provider,
       from_address = s.from_address,
       provider_message_id = s.provider_message_id,
       sent_at = now(),
       last_error = NULL
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
       AS s(job_id, provider, from_address, provider_message_id),
       health
 WHERE o.job_id = s.job_id
