-- The database's clock. Every process reads time from PostgreSQL, so replicas whose
-- clocks drift still agree on what is due.
SELECT now()
