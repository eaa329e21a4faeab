-- The transaction whose snapshot pg_dump shares: the dump and the row counts read
-- the same instant.
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY
