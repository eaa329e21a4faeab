-- Step 6 of the routed claim (route_lane): reserve the picks and lease their jobs, in
-- one statement: each address's day count and next pacing slot, each limited
-- provider's minute and month counters, each trial provider's admissions, a ledger row
-- (send_attempts) per reservation, naming the lane's mailbox group (p_mailbox_group, ''
-- for none; its counter is route_lane's), and the jobs leased to the worker. Returns the
-- claimed jobs with what a send needs in args (the message without its metadata, the
-- route and the reservation); sending costs no query of its own.
--
-- Locks: none of its own. Every row it writes was locked earlier in this claim (jobs,
-- address_usage, provider_usage, provider_health), so it cannot wait; every table is
-- reached by key lookups from the picks' arrays (tests/plans.rs).
--
-- Pacing: an address's next slot is its window length / effective limit after this
-- send, +- pacing_jitter; once the day's limit is used, no sooner than the day's end.
DROP FUNCTION IF EXISTS postrunner.lane_reserve(postrunner.route_pick[], uuid, uuid, interval, timestamptz, float8, text);
CREATE OR REPLACE FUNCTION postrunner.lane_reserve(
    p_picks postrunner.route_pick[], p_worker uuid, p_token uuid, p_lease interval,
    p_at timestamptz, p_window_secs float8, p_client_tz text, p_mailbox_group text)
RETURNS TABLE (
    id bigint, kind text, args jsonb, attempts integer, max_attempts integer, priority smallint,
    run_at timestamptz, created_at timestamptz, attempted_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
-- Every statement here reaches its rows by key (or an index range, in index order): a
-- sequential scan is never right for them, whatever the statistics (tests/plans.rs).
SET enable_seqscan = off
AS $fn$
#variable_conflict use_column
DECLARE
    jitter float8 := postrunner.setting_number('pacing_jitter', 0.2);
    cooldown interval := postrunner.breaker_cooldown();
    job_ids bigint[] := ARRAY(SELECT (p).job_id FROM unnest(p_picks) p);
    addresses text[] := ARRAY(SELECT (p).address FROM unnest(p_picks) p);
    this_minute timestamptz := date_trunc('minute', p_at);
    this_month date := postrunner.utc_month(p_at);
BEGIN
    RETURN QUERY
    WITH picks AS (
        SELECT * FROM unnest(p_picks)
    ),
    usage AS (
        UPDATE postrunner.address_usage u
           SET sent_on_day = CASE WHEN u.day = p.day THEN u.sent_on_day + 1 ELSE 1 END,
               day = p.day,
               last_sent_at = p_at,
               next_slot_at = CASE
                   WHEN (CASE WHEN u.day = p.day THEN u.sent_on_day + 1 ELSE 1 END) >= p.day_limit
                   THEN greatest(postrunner.day_end(p.day, p_client_tz),
                                 p_at + make_interval(secs => p_window_secs / p.day_limit * (1 - jitter)))
                   ELSE p_at + make_interval(secs => p_window_secs / p.day_limit * (1 + jitter * (2 * random() - 1)))
               END
          FROM picks p
         WHERE u.address = p.address AND u.address = ANY (addresses)
    ),
    sends AS (
        SELECT p.provider, count(*)::integer AS n, count(*) FILTER (WHERE p.trial)::integer AS trials
          FROM picks p GROUP BY p.provider
    ),
    counters AS (
        UPDATE postrunner.provider_usage u
           SET sent_in_minute = CASE WHEN u.minute = this_minute THEN u.sent_in_minute ELSE 0 END + s.n,
               minute = this_minute,
               sent_in_month = CASE WHEN u.month = this_month THEN u.sent_in_month
                                    ELSE postrunner.provider_month_sends(u.provider, this_month) END + s.n,
               month = this_month
          FROM sends s
          JOIN postrunner.providers pr ON pr.name = s.provider
         WHERE u.provider = s.provider
           AND (pr.per_minute IS NOT NULL OR pr.monthly_budget IS NOT NULL)
    ),
    trials AS (
        UPDATE postrunner.provider_health h
           SET trial_sends = CASE WHEN h.trial_window_at > p_at - cooldown THEN h.trial_sends ELSE 0 END + s.trials,
               trial_window_at = CASE WHEN h.trial_window_at > p_at - cooldown THEN h.trial_window_at ELSE p_at END
          FROM sends s
         WHERE h.provider = s.provider AND s.trials > 0
    ),
    claimed AS (
        UPDATE postrunner.jobs AS j
           SET state = 'running',
               attempts = j.attempts + 1,
               leased_by = p_worker,
               lease_token = p_token,
               lease_expires_at = p_at + p_lease,
               attempted_at = p_at
         WHERE j.id = ANY (job_ids)
        RETURNING j.id, j.kind, j.attempts, j.max_attempts, j.priority, j.run_at, j.created_at, j.attempted_at,
                  j.reroutes
    ),
    messages AS (
        SELECT o.id, o.job_id, o.client, o.direction, o.to_address, o.subject, o.text_body, o.html_body, o.headers,
               cl.unsubscribe_mailto, cl.unsubscribe_footer
          FROM postrunner.outbox o
          JOIN postrunner.clients cl ON cl.name = o.client
         WHERE o.job_id = ANY (job_ids)
    ),
    ledger AS (
        INSERT INTO postrunner.send_attempts
               (message_id, job_id, attempt, client, direction, provider, from_address, day, reserved_at, trial,
                mailbox_group)
        SELECT m.id, c.id, c.attempts, m.client, m.direction, p.provider, p.address, p.day, p_at, p.trial,
               nullif(p_mailbox_group, '')
          FROM claimed c
          JOIN picks p ON p.job_id = c.id
          JOIN messages m ON m.job_id = c.id
        RETURNING id AS attempt_id, job_id
    )
    SELECT c.id, c.kind,
           jsonb_build_object(
               'attempt_id', l.attempt_id,
               'reroutes', c.reroutes,
               'provider', p.provider,
               'from_address', p.address,
               'from_name', s.display_name,
               'message', jsonb_build_object(
                   'id', m.id, 'client', m.client, 'direction', m.direction, 'to', m.to_address,
                   'subject', m.subject, 'text_body', m.text_body, 'html_body', m.html_body,
                   'headers', m.headers, 'unsubscribe_mailto', m.unsubscribe_mailto,
                   'unsubscribe_footer', m.unsubscribe_footer)),
           c.attempts, c.max_attempts, c.priority, c.run_at, c.created_at, c.attempted_at
      FROM claimed c
      JOIN picks p ON p.job_id = c.id
      JOIN ledger l ON l.job_id = c.id
      JOIN messages m ON m.job_id = c.id
      JOIN postrunner.sender_addresses s ON s.address = p.address AND s.address = ANY (addresses);

    -- The messages are 'sending' (one statement for the batch; the row-by-row status
    -- mirror skips the claim's transition).
    UPDATE postrunner.outbox o
       SET status = 'sending', attempts = j.attempts
      FROM postrunner.jobs j
     WHERE j.id = ANY (job_ids) AND o.job_id = j.id AND o.job_id = ANY (job_ids);
END
$fn$;
