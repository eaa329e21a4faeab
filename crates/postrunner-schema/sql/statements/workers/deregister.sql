-- A process that stops cleanly removes itself from postrunner.processes.
DELETE FROM postrunner.processes WHERE id = $1
