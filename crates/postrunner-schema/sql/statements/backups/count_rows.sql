-- The exact row count of one table ($1 schema, $2 table), named by parameters: the
-- statement is static, the table is quoted by format('%I') and counted by query_to_xml.
-- Read inside the dump's (or the check's) snapshot: the counts are the dump's.
SELECT (xpath('/row/n/text()',
              query_to_xml(format('SELECT count(*) AS n FROM %I.%I', $1::text, $2::text), false, true, '')))[1]::text::bigint
