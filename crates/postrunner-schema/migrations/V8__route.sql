-- The routed claim: postrunner.claim_messages takes email jobs lane by lane and, in
-- the same transaction, gives each one a sender address and reserves its capacity.
-- sql/queue/claim.sql calls it after the generic claim (V6, V7).
--
-- Why in the claim: the reservation then commits together with the lease. There is no
-- moment where a worker holds a message without a reservation, or a reservation without
-- a message, and no lock or transaction outlives the claim: the provider call happens
-- after the commit.
--
-- Both functions are planned generically (plan_cache_mode), like claim_jobs, so that
-- planning never probes index ends full of dead entries from a fast drain.

-- How long a provider that went down gets no traffic before trial sends
-- (settings 'breaker_cooldown_secs', default 30).
CREATE FUNCTION postrunner.breaker_cooldown() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT make_interval(secs => coalesce((SELECT value::float8 FROM postrunner.settings
                                            WHERE name = 'breaker_cooldown_secs'), 30))
$$;

-- Route up to p_want messages of lane p_lane at p_at, for worker p_worker under lease
-- token p_token. Returns the claimed jobs; args carries the message and its route.
--
-- Steps, each on rows taken with SKIP LOCKED (a claim never waits):
--  1. the direction's sending window: closed -> gate the lane until it opens;
--  2. the lane's next messages (priority, run_at, id), with their outbox rows;
--     suppressed recipients end as 'suppressed' here, using no capacity;
--  3. the providers the direction may use: enabled, not down, with what their rate and
--     budget still allow (provider_usage, locked only for providers that have limits);
--  4. candidate addresses: per provider the active ones whose pacing slot has come,
--     longest waiting first; merged across providers by stride keys (weighted
--     round-robin: a provider's k-th candidate sorts at its turn + k / weight);
--  5. the chosen addresses locked and re-checked (today's effective limit);
--  6. messages and addresses paired in order; usage, ledger and jobs written in one
--     statement; the lane's turns and round-robin position moved on;
--  7. messages left without an address: the lane is gated until the earliest moment
--     capacity frees, with the reason (report_blocked).
CREATE FUNCTION postrunner.route_lane(
    p_lane integer, p_want bigint, p_worker uuid, p_token uuid, p_lease interval, p_at timestamptz
) RETURNS TABLE (
    id bigint, kind text, args jsonb, attempts integer, max_attempts integer, priority smallint,
    run_at timestamptz, created_at timestamptz, attempted_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
    lane record;
    today date;
    day_end timestamptz;
    this_minute timestamptz := date_trunc('minute', p_at);
    this_month date := date_trunc('month', p_at AT TIME ZONE 'UTC')::date;
    window_secs float8;
    jitter float8 := coalesce((SELECT value::float8 FROM postrunner.settings WHERE name = 'pacing_jitter'), 0.2);
    cooldown interval := postrunner.breaker_cooldown();
    job_ids bigint[];
    suppressed_ids bigint[];
    n integer;
    prov_names text[];
    prov_weights float8[];
    prov_allow integer[];
    limited_wanted integer;
    limited_locked integer;
    chosen text[];
    offered text[];
    got_addresses text[];
    got_providers text[];
    got_limits integer[];
    exhausted text[];
    routed integer;
    gate record;
BEGIN
    SELECT l.id, l.client, l.direction, l.turns, d.send_days, d.window_start, d.window_end,
           coalesce(d.time_zone, c.time_zone) AS window_tz, c.time_zone AS client_tz
      INTO lane
      FROM postrunner.lanes l
      JOIN postrunner.directions d ON (d.client, d.name) = (l.client, l.direction)
      JOIN postrunner.clients c ON c.name = l.client
     WHERE l.id = p_lane;

    -- 1. The sending window.
    IF NOT postrunner.window_is_open(lane.send_days, lane.window_start, lane.window_end, lane.window_tz, p_at) THEN
        UPDATE postrunner.lanes
           SET ready_at = postrunner.window_opens_at(lane.send_days, lane.window_start, lane.window_tz, p_at),
               waiting_for = 'window',
               waiting_detail = format('sends %s to %s (%s), ISO days %s', lane.window_start, lane.window_end,
                                       lane.window_tz, array_to_string(lane.send_days, ','))
         WHERE id = p_lane;
        RETURN;
    END IF;

    -- 2. The lane's next messages and their outbox rows.
    SELECT array_agg(m.job_id ORDER BY m.neg_priority, m.run_at, m.job_id) FILTER (WHERE NOT m.suppressed),
           array_agg(m.job_id) FILTER (WHERE m.suppressed)
      INTO job_ids, suppressed_ids
      FROM (SELECT o.job_id, c.neg_priority, c.run_at,
                   EXISTS (SELECT 1 FROM postrunner.suppressions s
                            WHERE s.client = o.client AND lower(s.address) = lower(o.to_address)) AS suppressed
              FROM (SELECT j.id, (-j.priority) AS neg_priority, j.run_at
                      FROM postrunner.jobs j
                     WHERE j.lane = p_lane AND j.state = 'available' AND j.run_at <= p_at
                     ORDER BY (-j.priority), j.run_at, j.id
                     LIMIT p_want
                       FOR UPDATE SKIP LOCKED) c
              JOIN postrunner.outbox o ON o.job_id = c.id
               FOR NO KEY UPDATE OF o SKIP LOCKED) m;

    IF suppressed_ids IS NOT NULL THEN
        -- The message ends here; the status guard lets postrunner write 'suppressed'
        -- once the job is gone.
        PERFORM set_config('postrunner.internal', 'on', true);
        DELETE FROM postrunner.jobs WHERE id = ANY (suppressed_ids);
        UPDATE postrunner.outbox
           SET status = 'suppressed', last_error = 'the recipient is suppressed for this client'
         WHERE job_id = ANY (suppressed_ids);
    END IF;
    n := coalesce(cardinality(job_ids), 0);
    IF n = 0 THEN
        RETURN;
    END IF;

    today := postrunner.local_day(p_at, lane.client_tz);
    day_end := postrunner.next_day_start(p_at, lane.client_tz);
    window_secs := extract(epoch FROM (lane.window_end - lane.window_start));

    -- 3. Providers the direction may use, and what each may still take now. Rate and
    --    budget counters are locked (SKIP LOCKED) only for providers that have them.
    WITH allowed AS (
        SELECT p.name, p.per_minute, p.monthly_budget, p.price_per_1000, p.monthly_fee,
               coalesce(dp.weight, p.weight)::float8 * CASE h.state WHEN 'degraded' THEN 0.5 ELSE 1 END AS weight
          FROM postrunner.providers p
          LEFT JOIN postrunner.direction_providers dp
                 ON (dp.client, dp.direction, dp.provider) = (lane.client, lane.direction, p.name)
          LEFT JOIN postrunner.provider_health h ON h.provider = p.name
         WHERE p.enabled
           -- A down provider gets no traffic until its cool-down has passed (then trial
           -- sends: one success brings it up, one failure takes it down again).
           AND (coalesce(h.state, 'up') <> 'down' OR h.since <= p_at - cooldown)
           -- A provider that asked for a pause (Retry-After) waits it out.
           AND (h.paused_until IS NULL OR h.paused_until <= p_at)
           AND postrunner.direction_may_use(lane.client, lane.direction, p.name)
    ),
    counted AS (
        SELECT u.provider,
               CASE WHEN u.minute = this_minute THEN u.sent_in_minute ELSE 0 END AS in_minute,
               CASE WHEN u.month = this_month THEN u.sent_in_month
                    ELSE postrunner.provider_month_sends(u.provider, this_month) END AS in_month
          FROM postrunner.provider_usage u
         WHERE u.provider IN (SELECT name FROM allowed WHERE per_minute IS NOT NULL OR monthly_budget IS NOT NULL)
           FOR UPDATE OF u SKIP LOCKED
    ),
    allowance AS (
        SELECT a.name, a.weight,
               CASE WHEN a.per_minute IS NULL AND a.monthly_budget IS NULL THEN n
                    WHEN c.provider IS NULL THEN 0   -- its counter is busy in another claim
                    ELSE greatest(0, least(
                        n,
                        coalesce(a.per_minute - c.in_minute, n),
                        CASE WHEN a.monthly_budget IS NULL THEN n
                             WHEN a.price_per_1000 = 0 THEN CASE WHEN a.monthly_fee > a.monthly_budget THEN 0 ELSE n END
                             ELSE floor((a.monthly_budget - a.monthly_fee) * 1000 / a.price_per_1000)::integer - c.in_month
                        END))
               END AS allow,
               (a.per_minute IS NOT NULL OR a.monthly_budget IS NOT NULL) AS limited,
               c.provider IS NOT NULL AS locked
          FROM allowed a LEFT JOIN counted c ON c.provider = a.name
    )
    SELECT array_agg(name ORDER BY name), array_agg(weight ORDER BY name), array_agg(allow ORDER BY name),
           count(*) FILTER (WHERE limited), count(*) FILTER (WHERE limited AND locked)
      INTO prov_names, prov_weights, prov_allow, limited_wanted, limited_locked
      FROM allowance;

    -- 4. Candidates, merged across providers by stride key; which providers offered any.
    WITH candidates AS (
        SELECT a.address, pv.name AS provider,
               coalesce((lane.turns ->> pv.name)::float8, 0) + a.rank / pv.weight AS key
          FROM unnest(prov_names, prov_weights, prov_allow) AS pv(name, weight, allow)
         CROSS JOIN LATERAL (
               SELECT u.address, row_number() OVER (ORDER BY u.next_slot_at, u.address) AS rank
                 FROM (SELECT u.address, u.next_slot_at
                         FROM postrunner.address_usage u
                        WHERE u.client = lane.client AND u.provider = pv.name AND u.active
                          AND u.next_slot_at <= p_at
                        ORDER BY u.next_slot_at
                        LIMIT least(n, pv.allow)) u) a
         WHERE pv.allow > 0
    )
    SELECT (SELECT array_agg(c.address ORDER BY c.key, c.address)
              FROM (SELECT address, key FROM candidates ORDER BY key, address LIMIT n) c),
           (SELECT array_agg(DISTINCT provider) FROM candidates)
      INTO chosen, offered;

    -- 5. Lock the chosen addresses and re-check them on their latest version.
    WITH locked AS (
        SELECT u.address, u.provider, k.ord,
               postrunner.effective_daily_limit(s.daily_limit, s.warmup_started_on, today) AS day_limit,
               CASE WHEN u.day = today THEN u.sent_on_day ELSE 0 END AS used,
               u.active AND s.status = 'active' AND u.next_slot_at <= p_at AS ready
          FROM unnest(chosen) WITH ORDINALITY AS k(address, ord)
          JOIN postrunner.address_usage u ON u.address = k.address
          JOIN postrunner.sender_addresses s ON s.address = u.address
           FOR UPDATE OF u SKIP LOCKED
    )
    SELECT array_agg(address ORDER BY ord) FILTER (WHERE ready AND used < day_limit),
           array_agg(provider ORDER BY ord) FILTER (WHERE ready AND used < day_limit),
           array_agg(day_limit ORDER BY ord) FILTER (WHERE ready AND used < day_limit),
           array_agg(address) FILTER (WHERE ready AND used >= day_limit)
      INTO got_addresses, got_providers, got_limits, exhausted
      FROM locked;

    -- An address found ready but out of capacity (its limit was lowered): park it until
    -- its next day, so it stops showing up as a candidate.
    IF exhausted IS NOT NULL THEN
        UPDATE postrunner.address_usage SET next_slot_at = day_end WHERE address = ANY (exhausted);
    END IF;

    -- 6. Pair messages with addresses, reserve, and claim.
    routed := least(n, coalesce(cardinality(got_addresses), 0));
    IF routed > 0 THEN
        RETURN QUERY
        WITH pairs AS (
            SELECT m.job_id, a.address, a.provider, a.day_limit
              FROM unnest(job_ids[1:routed]) WITH ORDINALITY AS m(job_id, ord)
              JOIN unnest(got_addresses[1:routed], got_providers[1:routed], got_limits[1:routed])
                   WITH ORDINALITY AS a(address, provider, day_limit, ord) USING (ord)
        ),
        usage AS (
            UPDATE postrunner.address_usage u
               SET sent_on_day = CASE WHEN u.day = today THEN u.sent_on_day + 1 ELSE 1 END,
                   day = today,
                   last_sent_at = p_at,
                   -- The pacing slot; once the day's limit is used, no sooner than the
                   -- next day (and still no sooner than the slot).
                   next_slot_at = CASE
                       WHEN (CASE WHEN u.day = today THEN u.sent_on_day + 1 ELSE 1 END) >= p.day_limit
                       THEN greatest(day_end, p_at + make_interval(secs => window_secs / p.day_limit * (1 - jitter)))
                       ELSE p_at + make_interval(secs => window_secs / p.day_limit * (1 + jitter * (2 * random() - 1)))
                   END
              FROM pairs p
             WHERE u.address = p.address
        ),
        providers_used AS (
            UPDATE postrunner.provider_usage u
               SET sent_in_minute = CASE WHEN u.minute = this_minute THEN u.sent_in_minute ELSE 0 END + c.sends,
                   minute = this_minute,
                   sent_in_month = CASE WHEN u.month = this_month THEN u.sent_in_month
                       ELSE postrunner.provider_month_sends(u.provider, this_month) END + c.sends,
                   month = this_month
              FROM (SELECT provider, count(*)::integer AS sends FROM pairs GROUP BY provider) c
              JOIN postrunner.providers p ON p.name = c.provider
             WHERE u.provider = c.provider
               AND (p.per_minute IS NOT NULL OR p.monthly_budget IS NOT NULL)
        ),
        claimed AS (
            UPDATE postrunner.jobs AS j
               SET state = 'running',
                   attempts = j.attempts + 1,
                   leased_by = p_worker,
                   lease_token = p_token,
                   lease_expires_at = p_at + p_lease,
                   attempted_at = CASE WHEN p_at = now() THEN clock_timestamp() ELSE p_at END
              FROM pairs
             WHERE j.id = pairs.job_id
            RETURNING j.id, j.kind, j.attempts, j.max_attempts, j.priority, j.run_at, j.created_at, j.attempted_at,
                      j.reroutes
        ),
        ledger AS (
            INSERT INTO postrunner.send_attempts
                   (message_id, job_id, attempt, client, direction, provider, from_address, day, reserved_at)
            SELECT o.id, c.id, c.attempts, o.client, o.direction, p.provider, p.address, today, p_at
              FROM claimed c
              JOIN pairs p ON p.job_id = c.id
              JOIN postrunner.outbox o ON o.job_id = c.id
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
                       'id', o.id, 'client', o.client, 'direction', o.direction, 'to', o.to_address,
                       'subject', o.subject, 'text_body', o.text_body, 'html_body', o.html_body,
                       'headers', o.headers, 'metadata', o.metadata)),
               c.attempts, c.max_attempts, c.priority, c.run_at, c.created_at, c.attempted_at
          FROM claimed c
          JOIN pairs p ON p.job_id = c.id
          JOIN ledger l ON l.job_id = c.id
          JOIN postrunner.outbox o ON o.job_id = c.id
          JOIN postrunner.sender_addresses s ON s.address = p.address;

        -- The messages are 'sending' (one statement for the batch; the row-by-row status
        -- mirror skips the claim's transition).
        UPDATE postrunner.outbox o
           SET status = 'sending', attempts = j.attempts
          FROM postrunner.jobs j
         WHERE j.id = ANY (job_ids[1:routed]) AND o.job_id = j.id AND j.state = 'running';

        -- The stride turns: a provider that sent moves on by sends / weight; one that
        -- offered addresses but was not reached keeps its turn (it goes first next
        -- time); one that could not take part at all (no address ready, rate or budget
        -- used up) is brought up to the slowest that sent, so it rejoins at par instead
        -- of taking everything until it catches up. Stored relative to the lowest, so
        -- the numbers stay small; providers not eligible now keep theirs.
        UPDATE postrunner.lanes
           SET served_at = p_at,
               turns = lane.turns || (
                   WITH used AS (
                       SELECT x AS provider, count(*) AS sends FROM unnest(got_providers[1:routed]) x GROUP BY x
                   ),
                   raw AS (
                       SELECT pv.name, coalesce((lane.turns ->> pv.name)::float8, 0) AS old, pv.weight, u.sends
                         FROM unnest(prov_names, prov_weights) AS pv(name, weight)
                         LEFT JOIN used u ON u.provider = pv.name
                   ),
                   moved AS (
                       SELECT r.name,
                              CASE WHEN r.sends IS NOT NULL THEN r.old + r.sends / r.weight
                                   WHEN r.name = ANY (offered) THEN r.old
                                   ELSE greatest(r.old, (SELECT min(old + sends / weight) FROM raw WHERE sends IS NOT NULL))
                              END AS turn
                         FROM raw r
                   )
                   SELECT jsonb_object_agg(name, turn - (SELECT min(turn) FROM moved)) FROM moved)
         WHERE id = p_lane;
    END IF;

    -- 7. Messages left without an address: gate the lane until capacity frees, unless
    --    that is only because another claim held some rows (then try again soon).
    IF routed < n
       AND limited_locked = limited_wanted
       AND coalesce(cardinality(got_addresses), 0) + coalesce(cardinality(exhausted), 0) = coalesce(cardinality(chosen), 0)
    THEN
        SELECT * INTO gate FROM postrunner.lane_blocked(p_lane, p_at);
        IF gate.ready_at > p_at THEN
            UPDATE postrunner.lanes
               SET ready_at = gate.ready_at, waiting_for = gate.waiting_for, waiting_detail = gate.waiting_detail
             WHERE id = p_lane;
        END IF;
    END IF;
END
$fn$;

-- Why lane p_lane cannot send at p_at, and until when: per provider the direction may
-- use, the later of its provider-level block (disabled, down, rate, budget) and its
-- earliest address slot; the lane waits for the provider that frees first.
CREATE FUNCTION postrunner.lane_blocked(p_lane integer, p_at timestamptz)
RETURNS TABLE (ready_at timestamptz, waiting_for text, waiting_detail text)
LANGUAGE sql STABLE AS $$
WITH lane AS (
    SELECT l.client, l.direction, c.time_zone AS client_tz, d.send_days, d.window_start, d.window_end,
           coalesce(d.time_zone, c.time_zone) AS window_tz
      FROM postrunner.lanes l
      JOIN postrunner.directions d ON (d.client, d.name) = (l.client, l.direction)
      JOIN postrunner.clients c ON c.name = l.client
     WHERE l.id = p_lane
),
providers AS (
    SELECT p.*, h.state AS health, h.since AS health_since, h.paused_until, u.minute, u.sent_in_minute, u.month, u.sent_in_month
      FROM lane
      JOIN postrunner.providers p ON TRUE
      LEFT JOIN postrunner.provider_health h ON h.provider = p.name
      LEFT JOIN postrunner.provider_usage u ON u.provider = p.name
     WHERE postrunner.direction_may_use(lane.client, lane.direction, p.name)
),
per_provider AS (
    SELECT p.name,
           -- provider-level block
           CASE WHEN NOT p.enabled THEN 'infinity'::timestamptz
                -- Until its cool-down ends (a change of health wakes every lane too).
                WHEN p.health = 'down' THEN greatest(p.health_since + postrunner.breaker_cooldown(), p_at)
                WHEN p.per_minute IS NOT NULL AND p.minute = date_trunc('minute', p_at)
                     AND p.sent_in_minute >= p.per_minute THEN date_trunc('minute', p_at) + interval '1 minute'
                WHEN p.paused_until > p_at THEN p.paused_until
                WHEN p.monthly_budget IS NOT NULL AND p.month = date_trunc('month', p_at AT TIME ZONE 'UTC')::date
                     AND p.price_per_1000 > 0
                     AND p.sent_in_month >= floor((p.monthly_budget - p.monthly_fee) * 1000 / p.price_per_1000)
                     THEN (date_trunc('month', p_at AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
                WHEN p.monthly_budget IS NOT NULL AND p.price_per_1000 = 0 AND p.monthly_fee > p.monthly_budget
                     THEN 'infinity'::timestamptz
           END AS blocked_until,
           CASE WHEN NOT p.enabled THEN 'provider_disabled'
                WHEN p.health = 'down' THEN 'provider_down'
                WHEN p.per_minute IS NOT NULL AND p.minute = date_trunc('minute', p_at)
                     AND p.sent_in_minute >= p.per_minute THEN 'provider_rate'
                WHEN p.paused_until > p_at THEN 'provider_rate'
                ELSE 'budget'
           END AS provider_reason,
           (SELECT min(u.next_slot_at) FROM postrunner.address_usage u
             WHERE u.client = lane.client AND u.provider = p.name AND u.active) AS next_slot
      FROM providers p, lane
),
per_provider_wait AS (
    SELECT name,
           CASE WHEN next_slot IS NULL THEN 'infinity'::timestamptz
                ELSE greatest(coalesce(blocked_until, '-infinity'), next_slot) END AS until,
           CASE WHEN next_slot IS NULL THEN 'no_address'
                WHEN blocked_until IS NOT NULL AND blocked_until >= next_slot THEN provider_reason
                WHEN next_slot >= postrunner.next_day_start(p_at, (SELECT client_tz FROM lane)) THEN 'daily_limit'
                ELSE 'pacing'
           END AS reason
      FROM per_provider
)
SELECT until, reason, detail
  FROM (SELECT w.until, w.reason, format('%s: %s until %s', w.name, replace(w.reason, '_', ' '), w.until) AS detail
          FROM per_provider_wait w
        UNION ALL
        SELECT 'infinity', 'no_provider', 'no enabled provider is allowed for this direction'
         WHERE NOT EXISTS (SELECT 1 FROM per_provider_wait)) w
 ORDER BY until, detail
 LIMIT 1
$$;

-- Claim up to p_limit messages across lanes whose gate is open and that have messages
-- waiting, least recently served first. Fair between directions: each lane gets an
-- equal share of what is left of the limit, and the round-robin position moves on. A
-- lane is locked (SKIP LOCKED) only when it is served, so concurrent claimers spread
-- over the lanes; within one lane, routing is serial.
CREATE FUNCTION postrunner.claim_messages(
    p_limit bigint, p_worker uuid, p_token uuid, p_lease interval, p_now timestamptz
) RETURNS TABLE (
    id bigint, kind text, args jsonb, attempts integer, max_attempts integer, priority smallint,
    run_at timestamptz, created_at timestamptz, attempted_at timestamptz
)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
    at_ timestamptz := coalesce(p_now, now());
    lane_ids integer[];
    i integer;
    remaining bigint := p_limit;
    routed bigint;
BEGIN
    IF p_limit <= 0 THEN
        RETURN;
    END IF;
    SELECT array_agg(l.id ORDER BY l.served_at, l.id) INTO lane_ids
      FROM (SELECT l.id, l.served_at FROM postrunner.lanes l
             WHERE l.ready_at <= at_
               AND EXISTS (SELECT 1 FROM postrunner.jobs j
                            WHERE j.lane = l.id AND j.state = 'available' AND j.run_at <= at_)
             ORDER BY l.served_at, l.id
             LIMIT 64) l;
    IF lane_ids IS NULL THEN
        RETURN;
    END IF;
    FOR i IN 1 .. cardinality(lane_ids) LOOP
        EXIT WHEN remaining <= 0;
        PERFORM FROM postrunner.lanes l WHERE l.id = lane_ids[i] AND l.ready_at <= at_ FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        RETURN QUERY SELECT * FROM postrunner.route_lane(
            lane_ids[i], ceil(remaining::numeric / (cardinality(lane_ids) - i + 1))::bigint,
            p_worker, p_token, p_lease, at_);
        GET DIAGNOSTICS routed = ROW_COUNT;
        remaining := remaining - routed;
    END LOOP;
END
$fn$;

-- When a claim could next route something: the earliest gate among lanes with messages
-- waiting (a time in the past means now: a lane was busy in another claim). NULL when
-- no lane has messages waiting. Workers sleep until then instead of polling. Clamped
-- to [now, now + 1 day], so a client never sees the infinities gates may hold.
CREATE FUNCTION postrunner.lanes_next_ready(p_now timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT least(greatest(min(l.ready_at), coalesce(p_now, now())), coalesce(p_now, now()) + interval '1 day')
      FROM postrunner.lanes l
     WHERE EXISTS (SELECT 1 FROM postrunner.jobs j
                    WHERE j.lane = l.id AND j.state = 'available' AND j.run_at <= coalesce(p_now, now()))
$$;

-- A send that failed: close its ledger row. When the provider did not take the message
-- (p_release), its capacity is given back: the address's count for that day and the
-- provider's minute and month counters. Idempotent (only a 'reserved' row changes).
-- Locks provider_usage before address_usage, the one order every waiting writer uses.
CREATE FUNCTION postrunner.close_attempt(p_attempt_id bigint, p_release boolean, p_error text)
RETURNS postrunner.attempt_outcome
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    a record;
BEGIN
    UPDATE postrunner.send_attempts
       SET outcome = CASE WHEN p_release THEN 'released' ELSE 'failed' END::postrunner.attempt_outcome,
           finished_at = now(),
           error = p_error
     WHERE id = p_attempt_id AND outcome = 'reserved'
    RETURNING provider, from_address, day, reserved_at, client, direction INTO a;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p_release THEN
        UPDATE postrunner.provider_usage
           SET sent_in_minute = CASE WHEN minute = date_trunc('minute', a.reserved_at)
                                     THEN greatest(sent_in_minute - 1, 0) ELSE sent_in_minute END,
               sent_in_month = CASE WHEN month = date_trunc('month', a.reserved_at AT TIME ZONE 'UTC')::date
                                    THEN greatest(sent_in_month - 1, 0) ELSE sent_in_month END
         WHERE provider = a.provider;
        -- An address this reservation had parked until its next day is ready again.
        UPDATE postrunner.address_usage u
           SET sent_on_day = greatest(u.sent_on_day - 1, 0),
               next_slot_at = CASE WHEN u.next_slot_at >= postrunner.next_day_start(a.reserved_at, c.time_zone)
                                   THEN a.reserved_at ELSE u.next_slot_at END
          FROM postrunner.clients c
         WHERE u.address = a.from_address AND u.day = a.day AND c.name = a.client;
        UPDATE postrunner.lanes SET ready_at = '-infinity', waiting_for = NULL, waiting_detail = NULL
         WHERE (client, direction) = (a.client, a.direction) AND ready_at > '-infinity';
    END IF;
    RETURN CASE WHEN p_release THEN 'released' ELSE 'failed' END::postrunner.attempt_outcome;
END
$fn$;
