-- Whether the restore target already has a postrunner schema (restores go into empty databases only).
SELECT to_regnamespace('postrunner') IS NOT NULL
