-- Whether every definition file $1[i] with text $2[i] (this binary's) is the one
-- applied: the same file with the same checksum in postrunner.sql_definitions. For
-- `/readyz`, beside the migrations' version.
SELECT count(*) = cardinality($1::text[])
  FROM unnest($1::text[], $2::text[]) AS x(file, sql)
  JOIN postrunner.sql_definitions d ON d.file = x.file AND d.checksum = md5(x.sql)
