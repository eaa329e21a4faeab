-- One reader per provider's bounce mailbox across replicas: a session advisory lock,
-- taken without waiting, released when the reader's own connection closes.
SELECT pg_try_advisory_lock(hashtext('postrunner.read_bounce_mail'), hashtext($1))
