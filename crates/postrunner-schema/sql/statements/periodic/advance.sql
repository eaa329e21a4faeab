-- Compare-and-set a schedule from the tick it expects ($2; NULL for a schedule that has
-- never run) to its next tick ($3). Exactly one of any number of racing schedulers sees
-- a row come back: that one owns the tick. Row lock held only until its transaction
-- (which also enqueues the tick's job) commits.
UPDATE postrunner.schedules
   SET next_run_at = $3, last_run_at = coalesce($2, last_run_at)
 WHERE name = $1
   AND enabled
   AND next_run_at IS NOT DISTINCT FROM $2::timestamptz
RETURNING name
