-- Lanes in line (migration V29): the routed claim walks lanes in (queue_at, id) order
-- through an index and parks a lane it finds with no message waiting (queue_at NULL),
-- so a claim's cost does not grow with the number of lanes (claim_messages.sql;
-- `postrunner bench lanes`). A parked lane comes back through lane_wakeups: whatever
-- makes one of its jobs available again (the outbox INSERT, promotion of a scheduled or
-- retried job, a rescue, a release, a re-route, a re-drive, a resend after an uncertain
-- wait, a move to another lane) leaves a row there, and the next claim brings the lane
-- back (take_lane_wakeups).
--
-- Why a row rather than an UPDATE of the lane: the writer may be an application's
-- transaction, open for as long as it likes and at any isolation level. Updating the
-- lane row would make every other INSERT into that lane wait for it, and a REPEATABLE
-- READ writer could not even see that a claim parked the lane after its snapshot. An
-- insert-only row waits for no one; a claim that parked the lane while the writer's
-- transaction was open sees the row once it commits (tests/routing_scale.rs,
-- a_lane_parked_while_a_message_was_being_inserted_comes_back).
--
-- Locks: writers none (insert only). take_lane_wakeups: the wakeup rows and the lanes
-- they name, FOR UPDATE SKIP LOCKED (a claim never waits; a row or lane another claim
-- holds is left for the next one).

-- A lane's client sends bulk mail: only claimers that sign unsubscribe links serve it
-- (claim_messages.sql). Kept on the lane so that the walk of a claimer that does not
-- sign uses an index of the other lanes.
CREATE OR REPLACE FUNCTION postrunner.lanes_set_bulk() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    NEW.bulk := coalesce((SELECT c.bulk FROM postrunner.clients c WHERE c.name = NEW.client), false);
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER lanes_set_bulk
    BEFORE INSERT ON postrunner.lanes
    FOR EACH ROW EXECUTE FUNCTION postrunner.lanes_set_bulk();

CREATE OR REPLACE FUNCTION postrunner.clients_sync_lane_bulk() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    UPDATE postrunner.lanes SET bulk = NEW.bulk WHERE client = NEW.name AND bulk IS DISTINCT FROM NEW.bulk;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER clients_sync_lane_bulk
    AFTER UPDATE OF bulk ON postrunner.clients
    FOR EACH ROW WHEN (OLD.bulk IS DISTINCT FROM NEW.bulk)
    EXECUTE FUNCTION postrunner.clients_sync_lane_bulk();

-- Every client takes turns (claim_messages.sql).
CREATE OR REPLACE FUNCTION postrunner.clients_add_turn() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.client_turns (client) SELECT name FROM new_clients ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER clients_add_turn
    AFTER INSERT ON postrunner.clients
    REFERENCING NEW TABLE AS new_clients
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.clients_add_turn();

-- A job of a lane became available (or moved to another lane while available): the
-- lane may have been parked. The WHEN clause keeps every other update (a claim, a
-- heartbeat, a completion) from calling anything.
CREATE OR REPLACE FUNCTION postrunner.jobs_wake_lane() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.lane_wakeups (lane) VALUES (NEW.lane);
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER jobs_wake_lane
    AFTER UPDATE OF state, lane ON postrunner.jobs
    FOR EACH ROW WHEN (NEW.lane IS NOT NULL AND NEW.state = 'available'
                       AND (OLD.state <> 'available' OR OLD.lane IS DISTINCT FROM NEW.lane))
    EXECUTE FUNCTION postrunner.jobs_wake_lane();

-- Brings back the parked lanes that wakeup rows name (at most p_limit rows a call), at
-- the back of the line (p_at). A row whose lane another claim holds stays for the next
-- claim: that claim may be parking the lane at this very moment. Rows naming a lane
-- that no longer exists are dropped. Returns how many lanes came back.
CREATE OR REPLACE FUNCTION postrunner.take_lane_wakeups(p_at timestamptz, p_limit integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    rows_ tid[];
    named integer[];
    existing integer[];
    locked integer[];
    woken integer;
BEGIN
    SELECT array_agg(w.ctid), array_agg(DISTINCT w.lane)
      INTO rows_, named
      FROM (SELECT w.ctid, w.lane FROM postrunner.lane_wakeups w LIMIT p_limit FOR UPDATE SKIP LOCKED) w;
    IF rows_ IS NULL THEN
        RETURN 0;
    END IF;
    existing := ARRAY(SELECT l.id FROM postrunner.lanes l WHERE l.id = ANY (named));
    locked := ARRAY(SELECT l.id FROM postrunner.lanes l WHERE l.id = ANY (existing) ORDER BY l.id FOR UPDATE SKIP LOCKED);
    UPDATE postrunner.lanes l SET queue_at = p_at WHERE l.id = ANY (locked) AND l.queue_at IS NULL;
    GET DIAGNOSTICS woken = ROW_COUNT;
    DELETE FROM postrunner.lane_wakeups w
     WHERE w.ctid = ANY (rows_) AND (w.lane = ANY (locked) OR w.lane <> ALL (existing));
    RETURN woken;
END
$fn$;
