-- The latest migration applied, as `V<n>__<name>` (refinery's history): written into a
-- backup's manifest, and compared with it when a restored copy is checked.
SELECT 'V' || version || '__' || name
  FROM public.refinery_schema_history
 ORDER BY version DESC
 LIMIT 1
