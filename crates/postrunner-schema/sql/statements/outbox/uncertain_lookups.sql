-- The next held sends to look up at their provider ($1 providers, $2 at most, $3 now).
SELECT message_id, provider, attempted_at, args FROM postrunner.uncertain_lookups($1, $2, $3)
