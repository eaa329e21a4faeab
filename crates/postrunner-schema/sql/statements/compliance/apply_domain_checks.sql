-- Holds or frees the addresses of failing domains (sql/definitions/400_compliance_domain_gate.sql).
SELECT * FROM postrunner.apply_domain_checks()
