-- Every sender domain, with its DKIM settings and the kinds of the providers that send
-- for it (their SPF includes). No locks.
SELECT d.domain, d.selector, d.signer, d.algorithm, d.key_env, d.key_file,
       coalesce(array_agg(DISTINCT p.kind::text) FILTER (WHERE p.kind IS NOT NULL), '{}') AS kinds
  FROM postrunner.sender_domains d
  LEFT JOIN postrunner.sender_addresses a ON lower(split_part(a.address, '@', 2)) = d.domain
  LEFT JOIN postrunner.providers p ON p.name = a.provider
 GROUP BY d.domain
 ORDER BY d.domain
