-- A worker's heartbeat: refresh its row in postrunner.processes and extend the lease of
-- every job it is running to "now" + $2. One statement per interval, whatever the
-- number of jobs in flight. Returns how many leases were extended.
WITH me AS (
    UPDATE postrunner.processes SET heartbeat_at = now() WHERE id = $1::uuid
)
UPDATE postrunner.jobs
   SET lease_expires_at = now() + $2::interval
 WHERE state = 'running'
   AND leased_by = $1::uuid
