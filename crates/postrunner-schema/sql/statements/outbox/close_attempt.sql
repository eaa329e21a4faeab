-- A send failed: close reservation $1 as 'released' (when $2: the provider did not take
-- the message, so its capacity is given back) or 'uncertain' (it may have), with error $3
-- and the failure's class $4 ('recipient', 'message', 'transient', 'provider').
-- See postrunner.close_attempt in sql/definitions/240_routing_reservations.sql.
SELECT postrunner.close_attempt($1, $2, $3, $4)
