-- A worker's heartbeat: refresh its row in postrunner.processes and extend to "now" + $2
-- the leases of exactly the jobs it still holds, the pairs ($3[i], $4[i]) of job id and
-- lease token. A job the worker no longer tracks (its outcome could not be written, or
-- the reply to its claim was lost) is not extended, so its lease runs out and it is
-- rescued instead of being held forever.
--
-- Locks: SKIP LOCKED, so a heartbeat never waits on (or deadlocks with) the completer
-- writing some of the same jobs' outcomes at that moment; those jobs are finishing anyway.
WITH me AS (
    UPDATE postrunner.processes SET heartbeat_at = now() WHERE id = $1::uuid
),
held AS (
    SELECT j.id
      FROM postrunner.jobs AS j
      JOIN unnest($3::bigint[], $4::uuid[]) AS h(id, lease_token)
        ON j.id = h.id AND j.lease_token = h.lease_token
     WHERE j.state = 'running'
       FOR UPDATE OF j SKIP LOCKED
)
UPDATE postrunner.jobs AS j
   SET lease_expires_at = now() + $2::interval
  FROM held
 WHERE j.id = held.id
