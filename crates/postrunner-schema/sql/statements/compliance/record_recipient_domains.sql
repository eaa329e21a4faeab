-- Records what the MX lookups found for recipient domains (sql/definitions/410_compliance_recipient_domains.sql).
SELECT postrunner.record_recipient_domains($1, $2, $3)
