-- Validation helpers shared by CHECK constraints and the outbox's INSERT trigger.
--
-- Locks: none; pure functions. is_email_address and is_time_zone are used by CHECK
-- constraints (clients, directions, sender_addresses, suppressions): a change here
-- applies to rows written from now on, existing rows are not re-checked.

-- A deliberately practical address check: one @, a local part without spaces, angle
-- brackets, control characters, or a dot at its start, its end or twice in a row (RFC
-- 5321's dot-atom; quoted local parts are refused), and a dotted domain of letters,
-- digits and hyphens. Full RFC 5322 is not the goal; refusing garbage at INSERT is.
CREATE OR REPLACE FUNCTION postrunner.is_email_address(address text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT address IS NOT NULL
       AND length(address) <= 254
       AND address ~ '^[^@[:space:][:cntrl:]<>(),;:"\[\]\\]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'
       AND split_part(address, '@', 1) !~ '(^\.|\.\.|\.$)'
$$;

-- True when `tz` names a time zone PostgreSQL knows (used by CHECK constraints).
CREATE OR REPLACE FUNCTION postrunner.is_time_zone(tz text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM now() AT TIME ZONE tz;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END
$$;

-- Raise a check_violation with a message that names the problem (and never echoes the
-- body, which may be large or private).
CREATE OR REPLACE FUNCTION postrunner.reject(message text, hint text DEFAULT NULL, code text DEFAULT 'check_violation')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF hint IS NULL THEN
        RAISE EXCEPTION USING MESSAGE = 'postrunner.outbox: ' || message, ERRCODE = code;
    END IF;
    RAISE EXCEPTION USING MESSAGE = 'postrunner.outbox: ' || message, HINT = hint, ERRCODE = code;
END
$$;
