-- Make up to $1 scheduled or retryable jobs whose time has come ($2 is "now", NULL
-- means now()) available, and say in how many seconds the next waiting job is due so
-- an idle worker can sleep until then (a wait by the database's clock, not an instant
-- the worker would compare with its own). SKIP LOCKED: concurrent promoters split the
-- work.
WITH due AS (
    SELECT id
      FROM postrunner.jobs
     WHERE state IN ('scheduled', 'retryable')
       AND run_at <= coalesce($2::timestamptz, now())
     ORDER BY run_at
     LIMIT $1
       FOR UPDATE SKIP LOCKED
),
promoted AS (
    UPDATE postrunner.jobs AS j
       SET state = 'available'
      FROM due
     WHERE j.id = due.id
    RETURNING j.id
)
SELECT (SELECT count(*) FROM promoted) AS promoted,
       extract(epoch FROM (SELECT min(run_at) FROM postrunner.jobs
                            WHERE state IN ('scheduled', 'retryable')
                              AND run_at > coalesce($2::timestamptz, now()))
                          - coalesce($2::timestamptz, now()))::float8 AS next_due_in
