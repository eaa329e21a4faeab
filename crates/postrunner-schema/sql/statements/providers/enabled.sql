-- The enabled providers, by name.
SELECT name FROM postrunner.providers WHERE enabled ORDER BY name
