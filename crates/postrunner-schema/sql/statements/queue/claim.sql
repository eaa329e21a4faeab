-- Claim up to $1 of postrunner's own jobs (those without a lane: periodic tasks,
-- benchmarks) for worker $2 under lease token $3, leased for $4, at "now" $5 (NULL:
-- now()), after cursor ($6, $7, $8) in claim order ((-priority), run_at, id). See
-- postrunner.claim_jobs in sql/definitions/090_queue_claim_jobs.sql. Email jobs are claimed routed, by
-- a statement of their own (sql/statements/routing/claim.sql), so that trouble in routing can
-- never stop rescue, probes or cleanup.
SELECT * FROM postrunner.claim_jobs($1, $2, $3, $4, $5, $6, $7, $8)
