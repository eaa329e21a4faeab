-- When a claim could next route a message: the earliest gate among lanes with messages
-- waiting at "now" $1 (NULL: now()) that a claimer signing unsubscribe links ($2) or not
-- may serve. In the past means at once (a lane was busy in
-- another claim); NULL means no lane has a message waiting. See lanes_next_ready in
-- sql/definitions/260_routing_lanes_next_ready.sql.
SELECT postrunner.lanes_next_ready($1, $2)
