-- The suppressions as one JSON document, for a restore to catch up with. Read-only.
SELECT coalesce(jsonb_agg(jsonb_build_object('client', client, 'address', address, 'reason', reason,
                                             'detail', detail, 'created_at', created_at,
                                             'expires_at', expires_at)), '[]')
  FROM postrunner.suppressions
