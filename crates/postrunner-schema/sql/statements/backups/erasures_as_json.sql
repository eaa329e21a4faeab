-- The erasure log as one JSON document, for a restore to catch up with. Read-only.
SELECT coalesce(jsonb_agg(jsonb_build_object('client', client, 'address_hash', address_hash,
                                             'erased_at', erased_at, 'erased', erased)), '[]')
  FROM postrunner.erasures
