-- Claim up to $1 email jobs for worker $2 under lease token $3, leased for $4, at "now"
-- $5 (NULL: the clock), lane by lane, each routed to a sender address with its capacity
-- reserved in this same transaction; $6: whether this worker signs one-click unsubscribe
-- links (a bulk client's messages need them). See postrunner.claim_messages in
-- sql/definitions/320_routing_claim_messages.sql; every row is taken with SKIP LOCKED.
SELECT * FROM postrunner.claim_messages($1, $2, $3, $4, $5, $6)
