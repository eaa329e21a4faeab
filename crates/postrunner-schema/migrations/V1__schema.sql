-- postrunner's schema and the small shared vocabulary the other migrations use.
--
-- Everything postrunner owns lives in the `postrunner` schema so that it can share a
-- database with the applications that enqueue mail, and so that a read-only role can be
-- granted the whole reporting surface with one GRANT USAGE.
CREATE SCHEMA IF NOT EXISTS postrunner;

-- A deliberately practical address check: one @, a non-empty local part without
-- spaces or angle brackets, and a dotted domain of letters, digits and hyphens.
-- Full RFC 5322 is not the goal; refusing obvious garbage at INSERT time is.
CREATE FUNCTION postrunner.is_email_address(address text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT address IS NOT NULL
       AND length(address) <= 254
       AND address ~ '^[^@[:space:]<>(),;:"\[\]\\]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$'
$$;

-- True when `tz` names a time zone PostgreSQL knows (used by CHECK constraints).
CREATE FUNCTION postrunner.is_time_zone(tz text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM now() AT TIME ZONE tz;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END
$$;
