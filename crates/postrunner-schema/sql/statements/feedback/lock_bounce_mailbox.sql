-- One reader per provider's bounce mailbox across replicas: an advisory lock taken
-- without waiting, for the reader's transaction. The reader keeps that transaction open
-- while it reads the mailbox and rolls it back after: the lock ends with it, or with the
-- connection if the reader dies. The transaction writes nothing and runs no statement
-- while it waits, so it holds back no vacuum; a transaction-level lock (not a session's)
-- so that it also holds through PgBouncer in transaction mode.
SELECT pg_try_advisory_xact_lock(hashtext('postrunner.read_bounce_mail'), hashtext($1))
