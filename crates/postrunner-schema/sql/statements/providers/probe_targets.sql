-- The providers the health probe checks: enabled, of a real kind.
SELECT name FROM postrunner.providers WHERE enabled AND kind <> 'log' ORDER BY name
