-- Enabled schedules with the tick each one expects next ($1 is "now" for callers that
-- want to know which are due; the caller computes ticks with the cron crate).
SELECT name, cron, kind, args, priority, next_run_at
  FROM postrunner.schedules
 WHERE enabled
 ORDER BY name
