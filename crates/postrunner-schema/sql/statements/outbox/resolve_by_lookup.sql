-- Records the held sends a provider says it took, as evidence of kind lookup.
SELECT postrunner.resolve_uncertain($1, $2, $3, 'lookup')
