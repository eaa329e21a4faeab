-- Record accepted messages on the outbox. Runs in the completion transaction, after
-- complete.sql, and only for the jobs that really completed (their lease was still
-- theirs). The transaction first says SET LOCAL postrunner.internal = 'on', which the
-- outbox status guard requires for writes that are not an application's cancel.
UPDATE postrunner.outbox AS o
   SET status = 'sent',
       provider = s.provider,
       from_address = s.from_address,
       provider_message_id = s.provider_message_id,
       sent_at = s.sent_at,
       last_error = NULL
  FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
       AS s(job_id, provider, from_address, provider_message_id, sent_at)
 WHERE o.job_id = s.job_id
