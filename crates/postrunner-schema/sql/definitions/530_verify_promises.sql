-- postrunner verify: every promise postrunner makes, as a query over the database
-- (`postrunner verify`, src/verify.rs; docs/operations.md). Each function below checks
-- one promise and returns its violations, with the rows involved; postrunner.verify()
-- returns them all. A row of severity 'explained' is not a violation: a duplicate the
-- documented uncertain path accounts for (a send held as uncertain, sent again under
-- duplicate_policy 'resend'), listed with the attempt that explains it.
--
-- The promises:
--   suppressed_recipient_mailed  no message accepted for a recipient suppressed,
--                                unsubscribed or erased for its client before the send
--                                was claimed (by at least `p_slack`: a suppression whose
--                                transaction was still open when the claim read the
--                                suppressions could not have been seen);
--   erased_in_clear              no erased address in clear: messages, suppressions,
--                                events (recipient, the provider's reported one, their
--                                diagnostic and payload);
--   duplicate_send               no message accepted twice (two 'sent' attempts, or a
--                                provider's evidence for an attempt given up or resent
--                                beside another 'sent' one), unless the uncertain path
--                                explains it;
--   address_day_limit, pacing, provider_minute, monthly_budget, mailbox_group_hour,
--   mailbox_group_day            no limit over, counted from the ledger in the time zone
--                                that applies (the client's for days and hours, UTC for
--                                minutes and months). Limits are read as they are now: a
--                                limit lowered today can show today's earlier sends;
--   uncertain_unresolved         every uncertain attempt held and within its wait (plus
--                                the resolver's period, `p_slack`);
--   job_without_message, message_without_job, status_not_job_state
--                                the queue and the outbox agree as the state machine says
--                                (docs/state_machine.md);
--   status_behind_events         a message's status is not behind what its provider
--                                reported (a delivered message is delivered or further,
--                                never sent, queued, retrying or failed);
--   lane_parked_with_work        no lane parked while it has messages waiting and no
--                                wakeup on its way (sql/definitions/130_routing_lane_wakeups.sql).
--
-- Findings name messages, events and suppressions by id or time, never by a
-- recipient's address (they end up in terminals and logs).
--
-- Cost: each check reads the ledger and the outbox once, through their indexes or in
-- one pass, never per row of another pass (`postrunner bench verify`: under 10 s on a
-- million messages, docs/bench/). Each is PL/pgSQL's RETURN QUERY, which PostgreSQL
-- runs in parallel where it pays. p_now is "now" (NULL: now()).
--
-- Locks: none (plain reads, one snapshot when called as one statement).

DROP FUNCTION IF EXISTS postrunner.verify(timestamptz, interval);

CREATE OR REPLACE FUNCTION postrunner.verify_suppressions(p_slack interval)
RETURNS TABLE (promise text, severity text, subject text, detail text, involved jsonb)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    -- Suppressions and quarantines, and the attempts accepted after them.
    SELECT 'suppressed_recipient_mailed', 'violation', a.message_id::text,
           format('the recipient of message %s was suppressed for %s (%s, at %s) and the message was accepted from %s at %s',
                  a.message_id, s.client, s.reason, s.created_at, a.provider, a.reserved_at),
           jsonb_build_object('suppression', to_jsonb(s) - 'address', 'attempt', to_jsonb(a))
      FROM postrunner.suppressions s
      JOIN postrunner.outbox o ON o.client = s.client AND lower(o.to_address) = lower(s.address)
      JOIN postrunner.send_attempts a ON a.message_id = o.id
     WHERE a.outcome = 'sent'
       AND a.reserved_at > s.created_at + p_slack
       AND (s.expires_at IS NULL OR s.expires_at > a.reserved_at)
    UNION ALL
    -- Erased people: their messages carry the erased form of the address.
    SELECT 'suppressed_recipient_mailed', 'violation', a.message_id::text,
           format('a person erased for %s at %s was sent message %s from %s at %s',
                  x.client, x.erased_at, a.message_id, a.provider, a.reserved_at),
           jsonb_build_object('erasure', jsonb_build_object('client', x.client, 'erased_at', x.erased_at),
                              'attempt', to_jsonb(a))
      FROM postrunner.erasures x
      JOIN postrunner.outbox o ON o.client = x.client
                              AND lower(o.to_address) = postrunner.erased_address(x.address_hash)
      JOIN postrunner.send_attempts a ON a.message_id = o.id
     WHERE a.outcome = 'sent' AND a.reserved_at > x.erased_at + p_slack;
END
$fn$;

CREATE OR REPLACE FUNCTION postrunner.verify_erasures()
RETURNS TABLE (promise text, severity text, subject text, detail text, involved jsonb)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    -- Every address in clear of a client with erasures, where it is kept, hashed as
    -- address_hash does (inline: one pass, no function call per row; no CTE, so the
    -- scans and the hashing can run in parallel). An event about its message's own
    -- recipient is checked through that message.
    SELECT 'erased_in_clear', 'violation', c.kind || ' ' || c.row_id,
           format('an address erased for %s at %s is in clear in %s %s', x.client, x.erased_at, c.kind, c.row_id),
           jsonb_build_object('kind', c.kind, 'row', c.row_id, 'client', c.client)
      FROM (SELECT 'message' AS kind, o.id::text AS row_id, o.client, o.to_address AS address
              FROM postrunner.outbox o
             WHERE o.client IN (SELECT x.client FROM postrunner.erasures x)
               AND NOT postrunner.is_erased_address(o.to_address)
            UNION ALL
            SELECT 'suppression', 'of ' || s.client || ' made at ' || s.created_at, s.client, s.address
              FROM postrunner.suppressions s
             WHERE s.client IN (SELECT x.client FROM postrunner.erasures x)
            UNION ALL
            SELECT 'event', e.id::text, e.client, e.recipient
              FROM postrunner.events e
              LEFT JOIN postrunner.outbox o ON o.id = e.message_id
             WHERE e.client IN (SELECT x.client FROM postrunner.erasures x)
               AND NOT postrunner.is_erased_address(e.recipient)
               AND e.recipient IS DISTINCT FROM o.to_address
            UNION ALL
            SELECT 'event (reported recipient)', e.id::text, e.client, e.reported_recipient
              FROM postrunner.events e
             WHERE e.reported_recipient IS NOT NULL
               AND e.client IN (SELECT x.client FROM postrunner.erasures x)) c
      JOIN postrunner.erasures x
        ON x.client = c.client
       AND x.address_hash
           = encode(sha256((SELECT s.salt FROM postrunner.erasure_salt s)
                           || convert_to(c.client || E'\n' || lower(btrim(c.address)), 'UTF8')), 'hex')
    UNION ALL
    -- What a provider said about an erased person stays with nobody.
    SELECT 'erased_in_clear', 'violation', 'event ' || e.id,
           format('event %s about an erased person keeps its %s', e.id,
                  CASE WHEN e.payload IS NOT NULL THEN 'payload' ELSE 'diagnostic' END),
           jsonb_build_object('event', e.id, 'client', e.client)
      FROM postrunner.events e
     WHERE postrunner.is_erased_address(e.recipient) AND (e.payload IS NOT NULL OR e.diagnostic IS NOT NULL);
END
$fn$;

CREATE OR REPLACE FUNCTION postrunner.verify_duplicates()
RETURNS TABLE (promise text, severity text, subject text, detail text, involved jsonb)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    -- Messages with more than one attempt (an index-only pass over
    -- send_attempts_message_idx), then their attempts that a provider accepted: 'sent',
    -- or closed after an uncertain wait (resent, given up) but reported on since by
    -- that provider's events.
    WITH several AS (
        SELECT a.message_id FROM postrunner.send_attempts a GROUP BY a.message_id HAVING count(*) > 1
    ),
    accepted AS (
        SELECT a.*
          FROM several m
          JOIN postrunner.send_attempts a ON a.message_id = m.message_id
         WHERE a.outcome = 'sent'
            OR (a.outcome = 'failed' AND a.resolution IN ('resent', 'given_up')
                AND EXISTS (SELECT 1 FROM postrunner.events e
                             WHERE e.message_id = a.message_id AND e.provider = a.provider AND e.kind <> 'rejected'))
    ),
    twice AS (
        SELECT c.message_id,
               jsonb_agg(to_jsonb(c) ORDER BY c.id) AS attempts,
               (array_agg(c.id ORDER BY c.id) FILTER (WHERE c.resolution = 'resent'))[1] AS explained_by
          FROM accepted c
         GROUP BY c.message_id
        HAVING count(*) > 1
    )
    SELECT 'duplicate_send',
           CASE WHEN t.explained_by IS NOT NULL THEN 'explained' ELSE 'violation' END,
           t.message_id::text,
           CASE WHEN t.explained_by IS NOT NULL
                THEN format('message %s was accepted %s times; attempt %s was uncertain and resent after its wait (duplicate_policy resend)',
                            t.message_id, jsonb_array_length(t.attempts), t.explained_by)
                ELSE format('message %s was accepted %s times', t.message_id, jsonb_array_length(t.attempts)) END,
           jsonb_build_object('attempts', t.attempts)
      FROM twice t;
END
$fn$;

CREATE OR REPLACE FUNCTION postrunner.verify_limits()
RETURNS TABLE (promise text, severity text, subject text, detail text, involved jsonb)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
DECLARE
    jitter float8 := postrunner.setting_number('pacing_jitter', 0.2);
BEGIN
    RETURN QUERY
    -- Each address's client-local days.
    SELECT 'address_day_limit', 'violation', d.from_address || ' ' || d.day,
           format('%s sent %s on %s, over its effective limit of %s', d.from_address, d.sends, d.day, d.day_limit),
           jsonb_build_object('address', d.from_address, 'day', d.day, 'sends', d.sends, 'limit', d.day_limit)
      FROM (SELECT a.from_address, a.day, count(*) AS sends,
                   postrunner.effective_daily_limit(s.daily_limit, s.warmup_started_on, a.day) AS day_limit
              FROM postrunner.send_attempts a
              JOIN postrunner.sender_addresses s ON s.address = a.from_address
             WHERE postrunner.counts_as_sent(a.outcome)
             GROUP BY a.from_address, a.day, s.daily_limit, s.warmup_started_on) d
     WHERE d.sends > d.day_limit;
    RETURN QUERY
    -- Each address's pacing: after a reservation, the next one no sooner than the
    -- window's length / that day's effective limit, less the jitter. (Addresses are
    -- sorted by their hash first, an integer, then by name among equal hashes; the
    -- arithmetic is in double precision.)
    SELECT 'pacing', 'violation', p.from_address || ' ' || p.reserved_at,
           format('%s reserved at %s, %s s after %s; its slot was %s s away at the least',
                  p.from_address, p.reserved_at, round(p.gap_secs::numeric, 3), p.previous_at,
                  round(p.min_gap_secs::numeric, 3)),
           jsonb_build_object('address', p.from_address, 'at', p.reserved_at, 'previous', p.previous_at,
                              'gap_secs', p.gap_secs, 'min_gap_secs', p.min_gap_secs)
      FROM (SELECT q.from_address, q.reserved_at, q.previous_at,
                   extract(epoch FROM q.reserved_at - q.previous_at)::float8 AS gap_secs,
                   extract(epoch FROM (dr.window_end - dr.window_start))::float8
                   / postrunner.effective_daily_limit(s.daily_limit, s.warmup_started_on, q.previous_day)
                   * (1 - jitter) AS min_gap_secs
              FROM (SELECT a.from_address, a.client, a.reserved_at,
                           lag(a.reserved_at) OVER w AS previous_at,
                           lag(a.direction) OVER w AS previous_direction,
                           lag(a.day) OVER w AS previous_day
                      FROM postrunner.send_attempts a
                     WHERE postrunner.counts_as_sent(a.outcome)
                    WINDOW w AS (PARTITION BY hashtext(a.from_address), a.from_address ORDER BY a.reserved_at, a.id)) q
              JOIN postrunner.sender_addresses s ON s.address = q.from_address
              JOIN postrunner.directions dr ON (dr.client, dr.name) = (q.client, q.previous_direction)
             WHERE q.previous_at IS NOT NULL) p
     WHERE p.gap_secs < p.min_gap_secs - 0.001;
    RETURN QUERY
    -- Each limited provider's calendar minutes (UTC).
    SELECT 'provider_minute', 'violation', m.provider || ' ' || m.minute,
           format('%s took %s in the minute of %s, over its rate of %s a minute', m.provider, m.sends, m.minute, m.per_minute),
           jsonb_build_object('provider', m.provider, 'minute', m.minute, 'sends', m.sends, 'per_minute', m.per_minute)
      FROM (SELECT a.provider, date_trunc('minute', a.reserved_at) AS minute, count(*) AS sends, p.per_minute
              FROM postrunner.providers p
              JOIN postrunner.send_attempts a ON a.provider = p.name
             WHERE p.per_minute IS NOT NULL AND postrunner.counts_as_sent(a.outcome)
             GROUP BY a.provider, date_trunc('minute', a.reserved_at), p.per_minute) m
     WHERE m.sends > m.per_minute;
    RETURN QUERY
    -- Each budgeted provider's UTC months.
    SELECT 'monthly_budget', 'violation', b.provider || ' ' || b.month,
           format('%s sent %s in the month of %s: %s, over its budget of %s', b.provider, b.sends, b.month,
                  b.monthly_fee + b.sends * b.price_per_1000 / 1000, b.monthly_budget),
           jsonb_build_object('provider', b.provider, 'month', b.month, 'sends', b.sends,
                              'spend', b.monthly_fee + b.sends * b.price_per_1000 / 1000, 'budget', b.monthly_budget)
      FROM (SELECT a.provider, postrunner.utc_month(a.reserved_at) AS month, count(*) AS sends,
                   p.monthly_fee, p.price_per_1000, p.monthly_budget
              FROM postrunner.providers p
              JOIN postrunner.send_attempts a ON a.provider = p.name
             WHERE p.monthly_budget IS NOT NULL AND postrunner.counts_as_sent(a.outcome)
             GROUP BY a.provider, postrunner.utc_month(a.reserved_at), p.monthly_fee, p.price_per_1000,
                      p.monthly_budget) b
     WHERE b.monthly_fee + b.sends * b.price_per_1000 / 1000 > b.monthly_budget;
    RETURN QUERY
    -- Each client's mailbox groups, per client-local clock hour and day.
    SELECT CASE WHEN g.per = 'hour' THEN 'mailbox_group_hour' ELSE 'mailbox_group_day' END, 'violation',
           g.client || '/' || g.mailbox_group || ' ' || g.period,
           format('%s sent %s to %s in the %s of %s, over its limit of %s', g.client, g.sends, g.mailbox_group,
                  g.per, g.period, g.lim),
           jsonb_build_object('client', g.client, 'mailbox_group', g.mailbox_group, g.per, g.period,
                              'sends', g.sends, 'limit', g.lim)
      FROM (SELECT a.client, a.mailbox_group, 'hour' AS per,
                   date_trunc('hour', a.reserved_at AT TIME ZONE c.time_zone)::text AS period,
                   count(*) AS sends, l.per_hour AS lim
              FROM postrunner.mailbox_group_limits l
              JOIN postrunner.clients c ON c.name = l.client
              JOIN postrunner.send_attempts a ON a.client = l.client AND a.mailbox_group = l.mailbox_group
             WHERE l.per_hour IS NOT NULL AND postrunner.counts_as_sent(a.outcome)
             GROUP BY a.client, a.mailbox_group, date_trunc('hour', a.reserved_at AT TIME ZONE c.time_zone), l.per_hour
            UNION ALL
            SELECT a.client, a.mailbox_group, 'day', a.day::text, count(*), l.per_day
              FROM postrunner.mailbox_group_limits l
              JOIN postrunner.send_attempts a ON a.client = l.client AND a.mailbox_group = l.mailbox_group
             WHERE l.per_day IS NOT NULL AND postrunner.counts_as_sent(a.outcome)
             GROUP BY a.client, a.mailbox_group, a.day, l.per_day) g
     WHERE g.sends > g.lim;
END
$fn$;

CREATE OR REPLACE FUNCTION postrunner.verify_uncertain(p_now timestamptz, p_slack interval)
RETURNS TABLE (promise text, severity text, subject text, detail text, involved jsonb)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT 'uncertain_unresolved', 'violation', a.message_id::text,
           CASE WHEN j.id IS NULL OR j.state <> 'held'
                THEN format('attempt %s of message %s is uncertain but its job is %s', a.id, a.message_id,
                            coalesce(j.state::text, 'gone'))
                ELSE format('attempt %s of message %s has been uncertain since %s, past its wait (%s)', a.id,
                            a.message_id, a.finished_at, j.run_at) END,
           jsonb_build_object('attempt', to_jsonb(a), 'job_state', j.state, 'job_run_at', j.run_at)
      FROM postrunner.send_attempts a
      LEFT JOIN postrunner.jobs j ON j.id = a.job_id
     WHERE a.outcome = 'uncertain'
       AND (j.id IS NULL OR j.state <> 'held' OR j.run_at + p_slack < coalesce(p_now, now()));
END
$fn$;

CREATE OR REPLACE FUNCTION postrunner.verify_queue()
RETURNS TABLE (promise text, severity text, subject text, detail text, involved jsonb)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT 'job_without_message', 'violation', j.id::text,
           format('email job %s (%s) carries no message', j.id, j.state),
           jsonb_build_object('job', j.id, 'state', j.state)
      FROM postrunner.jobs j
     WHERE j.kind = 'email.send'
       AND NOT EXISTS (SELECT 1 FROM postrunner.outbox o WHERE o.job_id = j.id)
    UNION ALL
    SELECT 'message_without_job', 'violation', o.id::text,
           format('message %s is %s but has no job', o.id, o.status),
           jsonb_build_object('message', o.id, 'status', o.status)
      FROM postrunner.outbox o
     WHERE o.status IN ('queued', 'retrying', 'sending', 'uncertain')
       AND NOT EXISTS (SELECT 1 FROM postrunner.jobs j WHERE j.id = o.job_id)
    UNION ALL
    SELECT 'status_not_job_state', 'violation', o.id::text,
           format('message %s is %s but its job is %s (attempt %s), which stands for %s', o.id, o.status, j.state,
                  j.attempts, postrunner.message_status_for(j.state, j.attempts)),
           jsonb_build_object('message', o.id, 'status', o.status, 'job_state', j.state, 'attempts', j.attempts)
      FROM postrunner.jobs j
      JOIN postrunner.outbox o ON o.job_id = j.id
     WHERE j.kind = 'email.send'
       AND o.status <> postrunner.message_status_for(j.state, j.attempts)
    UNION ALL
    SELECT 'lane_parked_with_work', 'violation', l.id::text,
           format('lane %s (%s/%s) is parked with messages waiting and no wakeup', l.id, l.client, l.direction),
           jsonb_build_object('lane', l.id, 'client', l.client, 'direction', l.direction)
      FROM postrunner.lanes l
     WHERE l.queue_at IS NULL
       AND EXISTS (SELECT 1 FROM postrunner.jobs j WHERE j.lane = l.id AND j.state = 'available')
       AND NOT EXISTS (SELECT 1 FROM postrunner.lane_wakeups w WHERE w.lane = l.id);
END
$fn$;

CREATE OR REPLACE FUNCTION postrunner.verify_statuses()
RETURNS TABLE (promise text, severity text, subject text, detail text, involved jsonb)
LANGUAGE plpgsql STABLE AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    -- Each event against its message (one join, in parallel), then one finding per
    -- message: the furthest status its provider reported.
    SELECT DISTINCT ON (o.id)
           'status_behind_events', 'violation', o.id::text,
           format('message %s is %s but %s reported it %s', o.id, o.status, e.provider,
                  coalesce(postrunner.event_status(e.kind, e.bounce_class)::text, e.kind::text)),
           jsonb_build_object('message', o.id, 'status', o.status, 'event', e.id, 'kind', e.kind,
                              'provider', e.provider)
      FROM postrunner.events e
      JOIN postrunner.outbox o ON o.id = e.message_id
     WHERE e.kind <> 'rejected'
       AND (postrunner.feedback_rank(o.status)
                < coalesce(postrunner.feedback_rank(postrunner.event_status(e.kind, e.bounce_class)), -1)
            -- Reported on, yet waiting to be sent again, or failed (a later attempt may
            -- be sending it now: that one is left to finish).
            OR o.status IN ('queued', 'retrying', 'failed'))
     ORDER BY o.id, postrunner.feedback_rank(postrunner.event_status(e.kind, e.bounce_class)) DESC NULLS LAST;
END
$fn$;

-- Every promise at once (one snapshot when called as one statement).
-- Its sorts and hash tables fit in memory at a million messages (work_mem); compiling
-- its plans (JIT) would take longer than running them.
CREATE OR REPLACE FUNCTION postrunner.verify(p_now timestamptz DEFAULT NULL, p_slack interval DEFAULT '2 minutes')
RETURNS TABLE (promise text, severity text, subject text, detail text, involved jsonb)
LANGUAGE sql STABLE
SET work_mem = '256MB'
SET jit = off
AS $$
    SELECT * FROM postrunner.verify_suppressions(least(p_slack, interval '10 seconds'))
    UNION ALL SELECT * FROM postrunner.verify_erasures()
    UNION ALL SELECT * FROM postrunner.verify_duplicates()
    UNION ALL SELECT * FROM postrunner.verify_limits()
    UNION ALL SELECT * FROM postrunner.verify_uncertain(p_now, p_slack)
    UNION ALL SELECT * FROM postrunner.verify_queue()
    UNION ALL SELECT * FROM postrunner.verify_statuses()
$$;
