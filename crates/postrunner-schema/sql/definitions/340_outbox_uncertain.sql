-- Sends whose outcome is uncertain: held, then decided by evidence or by the client's
-- duplicate policy (docs/state_machine.md, "Uncertain sends").
--
-- A send "may have been taken" when the request reached the provider but no answer
-- said what became of it: a timeout, a connection dropped after sending, a 502 or 504,
-- a worker killed mid-send (its lease rescued), a worker stopped past its grace. Sending
-- it again at once (elsewhere) can put it twice in the recipient's inbox, so instead:
--   - its reservation is closed 'uncertain' (its capacity stays used);
--   - its job is 'held' until now + uncertain_wait_secs (run_at), its message
--     'uncertain' (the status mirror, sql/definitions/150_outbox_status_mirror.sql);
--   - evidence resolves it as sent: an event from that provider with our id
--     (record_events calls resolve_uncertain as the event is stored; settle_uncertain
--     sweeps events that came before the hold), or a provider lookup (the
--     system.resolve_uncertain task asks providers that have one, then calls
--     resolve_uncertain);
--   - once the wait is over with no evidence, settle_uncertain makes the job available
--     again ('resend', while attempts are left) or discards it ('never-duplicate', or no
--     attempt left). The attempt keeps its capacity either way ('failed');
--   - evidence that comes after the wait still settles the message as sent, as long as
--     it has not been sent again: a resend still waiting for capacity is not sent, a
--     failed message becomes sent (and a re-drive of it is refused:
--     sql/definitions/180_outbox_retry_message.sql).
-- Every step is in send_attempts (outcome, resolution, resolved_at, looked_up_at) and in
-- the job's errors.
--
-- Locks, in the queue's order: held jobs first (FOR UPDATE, in id order; the sweep
-- with SKIP LOCKED), then their outbox rows and ledger rows. No worker touches a held
-- job, so only the resolver, record_events and an operator ever wait on one another
-- here, each for a statement's length.

-- How long a send whose outcome is uncertain waits for evidence.
CREATE OR REPLACE FUNCTION postrunner.uncertain_wait() RETURNS interval
LANGUAGE sql STABLE AS $$
    SELECT make_interval(secs => postrunner.setting_number('uncertain_wait_secs', 900))
$$;

-- Evidence that provider p_provider took messages p_message_ids (with its ids
-- p_provider_message_ids[i], NULL when the evidence does not carry one; the message's
-- events are then searched for one): a message whose last attempt at that provider is
-- an open question is recorded as sent, that attempt 'sent' with resolution p_how
-- ('event' or 'lookup'), its job deleted, as long as it has not been sent again: its
-- job is held (the wait is not over), or waiting to be sent again after the wait
-- ('resend': available, retryable, scheduled), or given up ('never-duplicate':
-- discarded, or gone) or cancelled since. Evidence at any time before the second send
-- is claimed settles the message (tests/uncertain.rs,
-- late_evidence_settles_a_message_waiting_to_be_sent_again); once a worker holds it
-- again, or another attempt sent it, it is left as it is. Returns how many were
-- resolved.
--
-- Locks: the messages' jobs (FOR UPDATE, in id order, waiting for a claim that holds
-- one at this instant: the claim commits in milliseconds, and the job is then running
-- and left alone), then their ledger and outbox rows.
CREATE OR REPLACE FUNCTION postrunner.resolve_uncertain(
    p_provider text, p_message_ids uuid[], p_provider_message_ids text[], p_how text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
DECLARE
    resolved integer;
BEGIN
    WITH given AS (
        SELECT DISTINCT ON (g.message_id) g.message_id, g.provider_message_id
          FROM unnest(p_message_ids, p_provider_message_ids) AS g(message_id, provider_message_id)
         WHERE g.message_id IS NOT NULL
         ORDER BY g.message_id, g.provider_message_id NULLS LAST
    ),
    -- The open question at this provider: the message's last attempt there, uncertain,
    -- or closed by the end of the wait (resent or given up), with no attempt since that
    -- is in flight, uncertain or sent.
    open_question AS (
        SELECT DISTINCT ON (g.message_id) g.message_id, a.id AS attempt_id, o.job_id
          FROM given g
          JOIN postrunner.outbox o ON o.id = g.message_id
          JOIN postrunner.send_attempts a ON a.message_id = g.message_id AND a.provider = p_provider
         WHERE (a.outcome = 'uncertain' OR (a.outcome = 'failed' AND a.resolution IN ('resent', 'given_up')))
           AND NOT EXISTS (SELECT 1 FROM postrunner.send_attempts b
                            WHERE b.message_id = g.message_id AND b.id > a.id
                              AND b.outcome IN ('reserved', 'sent', 'uncertain'))
         ORDER BY g.message_id, a.id DESC
    ),
    -- Their jobs, not being sent again (a claim that holds one now is waited for, and
    -- its job is then 'running': left alone).
    waiting AS (
        SELECT j.id
          FROM postrunner.jobs j
         WHERE j.id IN (SELECT q.job_id FROM open_question q)
           AND j.state IN ('held', 'available', 'retryable', 'scheduled', 'discarded', 'cancelled')
         ORDER BY j.id
           FOR UPDATE OF j
    ),
    settled AS (
        SELECT q.*
          FROM open_question q
         WHERE q.job_id IN (SELECT w.id FROM waiting w)
            OR NOT EXISTS (SELECT 1 FROM postrunner.jobs j WHERE j.id = q.job_id)
    ),
    attempt AS (
        UPDATE postrunner.send_attempts a
           SET outcome = 'sent', resolution = p_how, resolved_at = now()
          FROM settled q
         WHERE a.id = q.attempt_id
        RETURNING a.message_id, a.job_id, a.from_address, a.finished_at
    ),
    -- (Data-modifying WITH parts run whether or not the main statement reads them.)
    gone AS (
        DELETE FROM postrunner.jobs j
         USING attempt a
         WHERE j.id = a.job_id
    )
    UPDATE postrunner.outbox o
       SET status = coalesce(postrunner.status_from_events(o.id), 'sent'),
           provider = p_provider,
           from_address = a.from_address,
           provider_message_id = coalesce(
               g.provider_message_id,
               (SELECT e.provider_message_id FROM postrunner.events e
                 WHERE e.message_id = o.id AND e.provider = p_provider AND e.provider_message_id IS NOT NULL
                 ORDER BY e.id LIMIT 1)),
           sent_at = a.finished_at,
           last_error = NULL
      FROM attempt a
      JOIN given g ON g.message_id = a.message_id
     WHERE o.id = a.message_id;
    GET DIAGNOSTICS resolved = ROW_COUNT;
    RETURN resolved;
END
$fn$;

-- The resolver's pass (system.resolve_uncertain, every 10 s, and tests with p_now):
--   1. held messages whose provider already reported on them (an event that came
--      before the hold: a fast webhook while the worker still waited) are sent;
--   2. held jobs whose wait is over (run_at <= p_now), at most p_limit: by the
--      client's duplicate_policy, 'resend' makes the job available again while it has
--      attempts left; otherwise ('never-duplicate', or its last attempt) it is
--      discarded and its message fails saying why.
-- Returns what it did.
CREATE OR REPLACE FUNCTION postrunner.settle_uncertain(
    p_now timestamptz DEFAULT NULL, p_limit integer DEFAULT 1000,
    OUT confirmed integer, OUT resent integer, OUT given_up integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
DECLARE
    at timestamptz := coalesce(p_now, now());
    evidence record;
BEGIN
    confirmed := 0;
    FOR evidence IN
        SELECT a.provider, array_agg(a.message_id) AS ids, array_agg(ev.provider_message_id) AS provider_ids
          FROM postrunner.jobs j
          JOIN postrunner.send_attempts a ON a.job_id = j.id AND a.outcome = 'uncertain'
          CROSS JOIN LATERAL (
                SELECT e.provider_message_id FROM postrunner.events e
                 WHERE e.message_id = a.message_id AND e.provider = a.provider
                 ORDER BY e.provider_message_id IS NULL, e.id
                 LIMIT 1) ev
         WHERE j.state = 'held'
         GROUP BY a.provider
    LOOP
        confirmed := confirmed + postrunner.resolve_uncertain(evidence.provider, evidence.ids, evidence.provider_ids, 'event');
    END LOOP;

    WITH due AS (
        SELECT j.id,
               c.duplicate_policy = 'resend' AND j.attempts < j.max_attempts AS resend,
               c.duplicate_policy
          FROM postrunner.jobs j
          JOIN postrunner.outbox o ON o.job_id = j.id
          JOIN postrunner.clients c ON c.name = o.client
         WHERE j.state = 'held' AND j.run_at <= at
         ORDER BY j.run_at
         LIMIT p_limit
           FOR UPDATE OF j SKIP LOCKED
    ),
    ledger AS (
        UPDATE postrunner.send_attempts a
           SET outcome = 'failed',
               resolution = CASE WHEN due.resend THEN 'resent' ELSE 'given_up' END,
               resolved_at = at
          FROM due
         WHERE a.job_id = due.id AND a.outcome = 'uncertain'
    ),
    moved AS (
        UPDATE postrunner.jobs j
           SET state = CASE WHEN due.resend THEN 'available' ELSE 'discarded' END::postrunner.job_state,
               run_at = at,
               finalized_at = CASE WHEN NOT due.resend THEN at END,
               last_error = CASE
                   WHEN due.resend THEN 'outcome uncertain, no evidence within the wait: sent again (duplicate_policy resend)'
                   WHEN due.duplicate_policy = 'never-duplicate' THEN 'outcome uncertain, no evidence within the wait: not sent again (duplicate_policy never-duplicate)'
                   ELSE 'outcome uncertain, no evidence within the wait, and no attempt left' END,
               errors = j.errors || jsonb_build_array(jsonb_build_object(
                            'attempt', j.attempts, 'at', at,
                            'error', CASE WHEN due.resend THEN 'uncertain: resent after the wait'
                                          ELSE 'uncertain: given up after the wait' END))
          FROM due
         WHERE j.id = due.id
        RETURNING j.state
    )
    SELECT count(*) FILTER (WHERE state = 'available'), count(*) FILTER (WHERE state = 'discarded')
      INTO resent, given_up
      FROM moved;
    IF resent > 0 THEN
        PERFORM postrunner.notify_workers();
    END IF;
END
$fn$;

-- Held messages due for a provider lookup (at most p_limit, the oldest question first):
-- their uncertain attempt's provider is one of p_providers (the kinds that have a
-- lookup) and was not asked within uncertain_lookup_secs. Marks them asked (so two
-- resolvers do not both ask) and returns what a lookup needs: the message, the
-- provider, when the attempt was made, and the routed args the claim gave the worker
-- for that attempt (sql/definitions/300_routing_reserve.sql builds the same object), so a lookup that
-- repeats the request (Resend's idempotent replay) repeats it exactly. SKIP LOCKED: a
-- resolver never waits for another.
CREATE OR REPLACE FUNCTION postrunner.uncertain_lookups(p_providers text[], p_limit integer, p_now timestamptz DEFAULT NULL)
RETURNS TABLE (message_id uuid, provider text, attempted_at timestamptz, args jsonb)
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $$
    WITH due AS (
        SELECT a.id,
               jsonb_build_object(
                   'attempt_id', a.id,
                   'reroutes', j.reroutes,
                   'provider', a.provider,
                   'from_address', a.from_address,
                   'from_name', s.display_name,
                   'message', jsonb_build_object(
                       'id', o.id, 'client', o.client, 'direction', o.direction, 'to', o.to_address,
                       'subject', o.subject, 'text_body', o.text_body, 'html_body', o.html_body,
                       'headers', o.headers, 'unsubscribe_mailto', cl.unsubscribe_mailto,
                       'unsubscribe_footer', cl.unsubscribe_footer)) AS args
          FROM postrunner.jobs j
          JOIN postrunner.send_attempts a ON a.job_id = j.id AND a.outcome = 'uncertain'
          JOIN postrunner.outbox o ON o.job_id = j.id
          JOIN postrunner.clients cl ON cl.name = o.client
          LEFT JOIN postrunner.sender_addresses s ON s.address = a.from_address
         WHERE j.state = 'held'
           AND a.provider = ANY (p_providers)
           AND (a.looked_up_at IS NULL
                OR a.looked_up_at <= coalesce(p_now, now())
                                     - make_interval(secs => postrunner.setting_number('uncertain_lookup_secs', 60)))
         ORDER BY a.finished_at
         LIMIT p_limit
           FOR UPDATE OF a SKIP LOCKED
    )
    UPDATE postrunner.send_attempts a
       SET looked_up_at = coalesce(p_now, now())
      FROM due
     WHERE a.id = due.id
    RETURNING a.message_id, a.provider, a.reserved_at, due.args
$$;
