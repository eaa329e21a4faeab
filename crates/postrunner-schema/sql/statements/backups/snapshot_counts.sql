-- The ordinary tables of the postrunner and public schemas, as schema.table: the
-- manifest's row counts are taken for each in the dump's snapshot.
SELECT n.nspname || '.' || c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname IN ('postrunner', 'public')
 ORDER BY 1
