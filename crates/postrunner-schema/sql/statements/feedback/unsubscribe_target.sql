-- Whom an unsubscribe link is for (client, display name, recipient), by its token; no locks.
SELECT client, display_name, recipient, erased FROM postrunner.unsubscribe_target($1)
