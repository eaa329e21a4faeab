-- Erases a person for a client (sql/definitions/100_gdpr_erasure.sql): one transaction.
SELECT postrunner.erase_recipient($1, $2)
