-- Applies a provider's own suppression list (sql/definitions/380_feedback_provider_suppressions.sql).
SELECT postrunner.apply_provider_suppressions($1, $2)
