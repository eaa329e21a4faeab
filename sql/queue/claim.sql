-- Claim up to $1 jobs for worker $2 under lease token $3, leased for $4, at "now" $5
-- (NULL: now()). Two sources, one round trip:
--  - jobs without a lane (postrunner's own work, benchmarks), after cursor ($6, $7, $8)
--    in claim order ((-priority), run_at, id): postrunner.claim_jobs (V6, V7);
--  - email jobs, lane by lane, each routed to a sender address with its capacity
--    reserved in this same transaction: postrunner.claim_messages (V8), with what the
--    first claim left of the limit.
-- Both take rows with SKIP LOCKED and never wait; the locking notes are in the migrations.
WITH generic AS (
    SELECT * FROM postrunner.claim_jobs($1, $2, $3, $4, $5, $6, $7, $8)
)
SELECT *, false AS routed FROM generic
UNION ALL
SELECT *, true AS routed FROM postrunner.claim_messages($1 - (SELECT count(*) FROM generic), $2, $3, $4, $5)
