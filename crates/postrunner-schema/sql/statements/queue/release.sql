-- Give back jobs a stopping worker will not finish: each (id $1[i], token $2[i]) becomes
-- available at once for another replica. A job that never started ($3[i] false: it was
-- prefetched) does not count the attempt, and its reservation's capacity comes back;
-- one interrupted mid-run ($3[i] true: the grace period ran out) does, and is
-- discarded if that was its last. One NOTIFY wakes idle workers. See
-- postrunner.release_jobs in sql/definitions/240_routing_reservations.sql.
SELECT postrunner.release_jobs($1::bigint[], $2::uuid[], $3::boolean[]) AS released
