-- Every broken promise `postrunner verify` reports (sql/definitions/530_verify_promises.sql
-- does the work, reading only: no locks beyond a snapshot).
SELECT promise, severity, subject, detail, involved FROM postrunner.verify() ORDER BY promise, subject
