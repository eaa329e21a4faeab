-- Steps 4 and 5 of the routed claim (route_lane): a sender address for each message.
--
-- 4. Candidates: per usable provider, the client's active addresses whose pacing slot
--    has come, longest waiting first (address_usage_ready_idx), at most what the
--    provider may still take. They are merged across providers by stride keys: a
--    provider's k-th candidate sorts at its turn + k / weight, so providers share the
--    messages by weight (weighted round-robin), and a provider that offers nothing
--    drops out while the others carry its share.
-- 5. The chosen addresses are locked (FOR UPDATE SKIP LOCKED: one another claim holds is
--    simply not used this time) and re-checked on their latest version, which
--    PostgreSQL re-reads when it takes the lock: still active, slot still come, and
--    under today's effective limit (warm-up applied) on the client-local day the send
--    counts on. That day is the claim's, or the later day a later claim already moved
--    the address to: a counter never moves backwards.
--
-- An address found ready but out of capacity (its limit was lowered) is parked until
-- its next day, so that it stops showing up as a candidate.
--
-- Returns the picks paired with the messages in order, the providers that offered any
-- candidate (for the stride turns), and whether every chosen address could be locked
-- (when not, the lane is not gated: the rows were only busy).
CREATE OR REPLACE FUNCTION postrunner.lane_pick_senders(
    p_client text, p_client_tz text, p_turns jsonb, p_providers postrunner.route_provider[],
    p_jobs bigint[], p_at timestamptz,
    OUT picks postrunner.route_pick[], OUT offered text[], OUT all_locked boolean)
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
-- Every statement here reaches its rows by key (or an index range, in index order): a
-- sequential scan is never right for them, whatever the statistics (tests/plans.rs).
SET enable_seqscan = off
AS $fn$
DECLARE
    n integer := cardinality(p_jobs);
    today date := postrunner.local_day(p_at, p_client_tz);
    exhausted text[];
BEGIN
    WITH candidates AS (
        SELECT a.address, pv.provider, pv.trial,
               coalesce((p_turns ->> pv.provider)::float8, 0) + a.rank / pv.weight AS key
          FROM unnest(p_providers) AS pv
         CROSS JOIN LATERAL (
               SELECT u.address, row_number() OVER (ORDER BY u.next_slot_at, u.address) AS rank
                 FROM (SELECT u.address, u.next_slot_at
                         FROM postrunner.address_usage u
                        WHERE u.client = p_client AND u.provider = pv.provider AND u.active
                          AND u.next_slot_at <= p_at
                        ORDER BY u.next_slot_at
                        LIMIT least(n, pv.allowance)) u) a
         WHERE pv.allowance > 0
    ),
    chosen AS (
        SELECT c.address, c.provider, c.trial, row_number() OVER (ORDER BY c.key, c.address) AS ord
          FROM (SELECT * FROM candidates ORDER BY key, address LIMIT n) c
    ),
    locked AS (
        SELECT ch.ord, ch.address, ch.provider, ch.trial, l.day, l.day_limit,
               l.ready AND l.used < l.day_limit AS usable,
               l.ready AND l.used >= l.day_limit AS spent
          FROM chosen ch
         CROSS JOIN LATERAL (
               SELECT greatest(u.day, today) AS day,
                      postrunner.effective_daily_limit(s.daily_limit, s.warmup_started_on, greatest(u.day, today)) AS day_limit,
                      CASE WHEN u.day >= today THEN u.sent_on_day ELSE 0 END AS used,
                      u.active AND s.status = 'active' AND u.next_slot_at <= p_at AS ready
                 FROM postrunner.address_usage u
                 JOIN postrunner.sender_addresses s ON s.address = u.address
                WHERE u.address = ch.address
                  FOR UPDATE OF u SKIP LOCKED) l
    ),
    paired AS (
        SELECT l.*, row_number() OVER (ORDER BY l.ord) AS rank FROM locked l WHERE l.usable
    )
    SELECT (SELECT array_agg(ROW(p_jobs[p.rank], p.address, p.provider, p.day, p.day_limit, p.trial)::postrunner.route_pick
                             ORDER BY p.rank)
              FROM paired p WHERE p.rank <= n),
           (SELECT array_agg(DISTINCT c.provider) FROM candidates c),
           (SELECT count(*) FROM locked) = (SELECT count(*) FROM chosen),
           (SELECT array_agg(l.address) FROM locked l WHERE l.spent)
      INTO picks, offered, all_locked, exhausted;

    IF exhausted IS NOT NULL THEN
        UPDATE postrunner.address_usage u
           SET next_slot_at = postrunner.day_end(greatest(u.day, today), p_client_tz)
         WHERE u.address = ANY (exhausted);
    END IF;
    picks := coalesce(picks, '{}');
    offered := coalesce(offered, '{}');
END
$fn$;
