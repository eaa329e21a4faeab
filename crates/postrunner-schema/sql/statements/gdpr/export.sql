-- Everything held about a person for a client, as JSON. Read-only.
SELECT postrunner.export_recipient($1, $2)
