-- How many seconds from "now" $1 (NULL: now()) until a claim could next route a
-- message: the earliest gate among lanes with messages waiting that a claimer signing
-- unsubscribe links ($2) or not may serve. Zero or less means at once (a lane was busy
-- in another claim); NULL means no lane has a message waiting. See lanes_next_ready in
-- sql/definitions/260_routing_lanes_next_ready.sql.
--
-- A wait, not an instant: measured by the database's clock, so that a worker whose own
-- clock is stepped still sleeps as long as it should (tests/chaos.rs,
-- chaos_clock_step_on_one_worker).
SELECT extract(epoch FROM postrunner.lanes_next_ready($1, $2) - coalesce($1, now()))::float8
