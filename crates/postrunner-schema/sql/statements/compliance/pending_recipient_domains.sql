-- Recipient domains whose mailbox provider is not known yet, or is stale (at most $1).
SELECT postrunner.pending_recipient_domains($1)
