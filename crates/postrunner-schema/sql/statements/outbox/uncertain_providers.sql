-- The providers that have held (uncertain) sends, to ask those that can look a message up. No locks.
SELECT DISTINCT a.provider FROM postrunner.send_attempts a WHERE a.outcome = 'uncertain'
