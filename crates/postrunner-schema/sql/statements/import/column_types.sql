-- Each column's SQL type, from the catalog, so imported values are cast as the table
-- declares ($1: a table of schema postrunner).
SELECT attname::text, format_type(atttypid, atttypmod)
  FROM pg_attribute
 WHERE attrelid = ('postrunner.' || $1)::regclass AND attnum > 0 AND NOT attisdropped
