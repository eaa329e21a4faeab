-- Claim up to $1 runnable jobs for worker $2 under lease token $3, leased for $4, at
-- "now" $5 (NULL: now()), after cursor ($6, $7, $8) in claim order ((-priority), run_at,
-- id). The statement itself, with its locking notes, is postrunner.claim_jobs in
-- migrations/V6__claim.sql (a function, for the planning reason given there).
SELECT * FROM postrunner.claim_jobs($1, $2, $3, $4, $5, $6, $7, $8)
