-- Record failed attempts: for each i, job $1[i] claimed with token $2[i] becomes
-- $3[i] ('retryable' or 'discarded'), runs again $4[i] seconds after "now" ($6, NULL
-- means now()), and keeps error $5[i] in its history. Guarded by the lease token like
-- complete.sql. The retry decision itself is made in Rust (queue::retry).
--
-- $3[i] = 'reroute': the attempt did not count (its provider failed; another may take
-- the job): the job is available again at once, its attempt given back, its reroutes
-- counted.
--
-- $3[i] = 'held': the provider may have taken the message (sql/definitions/340_outbox_uncertain.sql):
-- the job waits uncertain_wait_secs for evidence, its attempt counted, before the
-- client's duplicate policy decides ($4[i] is ignored).
UPDATE postrunner.jobs AS j
   SET state = CASE WHEN f.state = 'reroute' THEN 'available' ELSE f.state END::postrunner.job_state,
       attempts = CASE WHEN f.state = 'reroute' THEN greatest(j.attempts - 1, 0) ELSE j.attempts END,
       reroutes = j.reroutes + (f.state = 'reroute')::integer,
       run_at = coalesce($6::timestamptz, now())
                + CASE WHEN f.state = 'held' THEN postrunner.uncertain_wait() ELSE make_interval(secs => f.delay_secs) END,
       last_error = f.error,
       errors = j.errors || jsonb_build_array(jsonb_build_object(
                    'attempt', j.attempts, 'at', coalesce($6::timestamptz, now()), 'error', f.error,
                    'rerouted', f.state = 'reroute', 'uncertain', f.state = 'held')),
       leased_by = NULL,
       lease_token = NULL,
       lease_expires_at = NULL,
       finalized_at = CASE WHEN f.state = 'discarded' THEN coalesce($6::timestamptz, now()) END
  FROM unnest($1::bigint[], $2::uuid[], $3::text[], $4::float8[], $5::text[])
       AS f(id, lease_token, state, delay_secs, error)
 WHERE j.id = f.id
   AND j.lease_token = f.lease_token
   AND j.state = 'running'
RETURNING j.id
