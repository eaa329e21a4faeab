-- Settles held sends whose wait ran out, by the duplicate policy (sql/definitions/340_outbox_uncertain.sql).
SELECT confirmed, resent, given_up FROM postrunner.settle_uncertain($1)
