-- The sender domains a provider sends for.
SELECT DISTINCT split_part(address, '@', 2) FROM postrunner.sender_addresses WHERE provider = $1 ORDER BY 1
