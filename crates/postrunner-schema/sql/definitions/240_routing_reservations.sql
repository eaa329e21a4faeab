-- Closing reservations in the ledger, and giving their capacity back when the provider
-- surely did not take the message.
--
-- Locks, in the one order every waiting writer of these rows uses: the ledger row, then
-- provider_usage, then address_usage, then mailbox_group_usage, then the lane. Only single reservations are
-- closed here (a failed send, a shutdown's unstarted jobs), so waits are short; the
-- claim takes the same rows with SKIP LOCKED and never waits on them.

-- Gives back the capacity of closed reservation `a` (a row of send_attempts): the
-- provider's minute and month counters (when they still count that minute and month),
-- the address's count for that day, and its pacing slot when this was its latest
-- reservation: the slot had come when the reservation was made, so the address may
-- send again from then; its mailbox group's hour and day counts (mailbox_groups.sql).
-- The direction's lanes are opened, since capacity came back.
CREATE OR REPLACE FUNCTION postrunner.give_back(a postrunner.send_attempts)
RETURNS void
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    UPDATE postrunner.provider_usage
       SET sent_in_minute = CASE WHEN minute = date_trunc('minute', a.reserved_at)
                                 THEN greatest(sent_in_minute - 1, 0) ELSE sent_in_minute END,
           sent_in_month = CASE WHEN month = postrunner.utc_month(a.reserved_at)
                                THEN greatest(sent_in_month - 1, 0) ELSE sent_in_month END
     WHERE provider = a.provider;
    UPDATE postrunner.address_usage u
       SET sent_on_day = greatest(u.sent_on_day - 1, 0),
           next_slot_at = CASE WHEN u.last_sent_at = a.reserved_at THEN least(u.next_slot_at, a.reserved_at)
                               ELSE u.next_slot_at END
     WHERE u.address = a.from_address AND u.day = a.day;
    IF a.mailbox_group IS NOT NULL THEN
        PERFORM postrunner.give_back_group(a);
    END IF;
    UPDATE postrunner.lanes
       SET ready_at = '-infinity', waiting_for = NULL, waiting_detail = NULL, queue_at = least(queue_at, now())
     WHERE (client, direction) = (a.client, a.direction) AND ready_at > '-infinity';
END
$fn$;

-- A send that failed: close its ledger row with the failure's class (p_fault:
-- 'recipient', 'message', 'transient' or 'provider'; only 'provider' counts against the
-- provider's health, sql/definitions/220_providers_breaker.sql). When the provider did not take the
-- message (p_release) its capacity is given back ('released'); when it may have, it
-- stays used ('uncertain': the job is held until evidence or the wait decides,
-- sql/definitions/340_outbox_uncertain.sql). Idempotent: only a 'reserved' row changes.
CREATE OR REPLACE FUNCTION postrunner.close_attempt(p_attempt_id bigint, p_release boolean, p_error text, p_fault text)
RETURNS postrunner.attempt_outcome
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    a postrunner.send_attempts;
BEGIN
    UPDATE postrunner.send_attempts
       SET outcome = CASE WHEN p_release THEN 'released' ELSE 'uncertain' END::postrunner.attempt_outcome,
           finished_at = now(),
           error = p_error,
           fault = p_fault
     WHERE id = p_attempt_id AND outcome = 'reserved'
    RETURNING * INTO a;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF p_release THEN
        PERFORM postrunner.give_back(a);
    END IF;
    RETURN a.outcome;
END
$fn$;

-- A stopping worker gives back jobs it will not finish (sql/statements/queue/release.sql): each
-- (p_ids[i], p_tokens[i]) becomes available at once. A job whose attempt never started
-- (p_started[i] false: it was prefetched) gets its attempt back, and its reservation, if
-- it has one, is released with its capacity: the provider never saw it. One interrupted
-- mid-run (the grace period ran out) keeps its attempt, and is discarded if that was
-- its last; an email job interrupted mid-send is held instead (the provider may have
-- taken it: sql/definitions/340_outbox_uncertain.sql), its reservation closed 'uncertain' by the status
-- mirror. Returns how many jobs were released.
--
-- Locks: the jobs (by key, waiting only for a statement on the same rows, which
-- commits in milliseconds), then each released reservation as give_back does.
CREATE OR REPLACE FUNCTION postrunner.release_jobs(p_ids bigint[], p_tokens uuid[], p_started boolean[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    a postrunner.send_attempts;
    released bigint;
    given_back bigint[];
BEGIN
    WITH mine AS (
        SELECT j.id, r.started
          FROM unnest(p_ids, p_tokens, p_started) AS r(id, lease_token, started)
          JOIN postrunner.jobs j ON j.id = r.id AND j.lease_token = r.lease_token AND j.state = 'running'
         WHERE j.id = ANY (p_ids)
           FOR UPDATE OF j
    ),
    unstarted AS (
        UPDATE postrunner.send_attempts s
           SET outcome = 'released', finished_at = now(), error = 'released: the worker stopped before sending'
          FROM mine
         WHERE s.job_id = mine.id AND s.job_id = ANY (p_ids) AND NOT mine.started AND s.outcome = 'reserved'
        RETURNING s.id
    ),
    jobs AS (
        UPDATE postrunner.jobs AS j
           SET state = CASE WHEN mine.started AND j.kind = 'email.send' THEN 'held'
                            WHEN mine.started AND j.attempts >= j.max_attempts THEN 'discarded'
                            ELSE 'available' END::postrunner.job_state,
               attempts = CASE WHEN mine.started THEN j.attempts ELSE greatest(j.attempts - 1, 0) END,
               last_error = CASE WHEN mine.started THEN 'interrupted: the worker stopped before the attempt finished'
                                 ELSE j.last_error END,
               finalized_at = CASE WHEN mine.started AND j.kind <> 'email.send' AND j.attempts >= j.max_attempts
                                   THEN now() END,
               run_at = now() + CASE WHEN mine.started AND j.kind = 'email.send'
                                     THEN postrunner.uncertain_wait() ELSE interval '0' END,
               leased_by = NULL,
               lease_token = NULL,
               lease_expires_at = NULL
          FROM mine
         WHERE j.id = mine.id AND j.id = ANY (p_ids)
        RETURNING j.id
    )
    SELECT (SELECT count(*) FROM jobs), (SELECT array_agg(u.id) FROM unstarted u)
      INTO released, given_back;
    -- Their capacity, one reservation at a time (at most a worker's prefetch).
    FOR a IN SELECT * FROM postrunner.send_attempts s WHERE s.id = ANY (given_back) LOOP
        PERFORM postrunner.give_back(a);
    END LOOP;
    IF released > 0 THEN
        PERFORM postrunner.notify_workers();
    END IF;
    RETURN released;
END
$fn$;
