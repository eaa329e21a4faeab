-- Sends through providers $1 succeeded: they are up again if they were not. Runs in the
-- completion transaction; writes only the rows that change.
SELECT postrunner.record_provider_successes($1)
