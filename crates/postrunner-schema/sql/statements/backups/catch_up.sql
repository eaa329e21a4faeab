-- Copies later erasures and suppressions into the restored database in one statement
-- (sql/definitions/390_backups_catch_up.sql): a permanent suppression always replaces a
-- quarantine, whichever database holds which.
SELECT erasures_copied, suppressions_copied, suppressions_upgraded
  FROM postrunner.catch_up_restore($1, $2)
