-- A scrape gives up rather than pile up behind a slow database: the limit of the
-- scrape's own transaction.
SET LOCAL statement_timeout = '5s'
