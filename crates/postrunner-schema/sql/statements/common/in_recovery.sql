-- Whether this server is a standby (in recovery): a new connection of postrunner's pools
-- that lands on one is refused and retried (postrunner_schema::pool), since every write
-- there fails. Once per connection, not per statement.
SELECT pg_is_in_recovery()
