-- Stores a batch of verified events once, under its nonce
-- (sql/definitions/330_feedback_record_events.sql).
SELECT replayed, stored, duplicates, unmatched FROM postrunner.record_events($1, $2, $3, $4)
