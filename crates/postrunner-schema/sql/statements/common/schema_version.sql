-- The version of the newest migration applied (postrunner.schema_version()), for
-- `/readyz`: a replica newer than its database is not ready. Fails with 42883 (no such
-- function) or 3F000 (no such schema) on a database never migrated.
SELECT postrunner.schema_version()::int8
