-- Operator settings (postrunner.settings) are typed and checked when written, so that
-- a value the claim could not read ('20%' for a fraction) is refused by the statement
-- that tries to store it, with a message that names the setting and the rule, instead
-- of making every claim fail later.
--
-- Locks: none beyond the written row.

-- Why `value` is not valid as a setting of `type` within [min_value, max_value], or
-- NULL when it is.
CREATE OR REPLACE FUNCTION postrunner.setting_problem(type text, value text, min_value numeric, max_value numeric)
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $fn$
DECLARE
    items text[];
    item text;
    n numeric;
    range text := CASE
        WHEN min_value IS NOT NULL AND max_value IS NOT NULL THEN format(' between %s and %s', min_value, max_value)
        WHEN min_value IS NOT NULL THEN format(' of at least %s', min_value)
        WHEN max_value IS NOT NULL THEN format(' of at most %s', max_value)
        ELSE '' END;
    what text := CASE type WHEN 'integer' THEN 'a whole number' WHEN 'number' THEN 'a number'
                           ELSE 'comma-separated whole numbers' END || range;
BEGIN
    IF value IS NULL THEN
        RETURN 'must not be NULL';
    END IF;
    items := CASE WHEN type = 'integer_list' THEN string_to_array(value, ',') ELSE ARRAY[value] END;
    IF cardinality(items) = 0 THEN
        RETURN 'must be ' || what;
    END IF;
    FOREACH item IN ARRAY items LOOP
        IF type IN ('integer', 'integer_list') AND btrim(item) !~ '^[+-]?[0-9]{1,18}$' THEN
            RETURN 'must be ' || what;
        END IF;
        IF type = 'number' AND btrim(item) !~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$' THEN
            RETURN 'must be ' || what;
        END IF;
        n := btrim(item)::numeric;
        IF n < min_value OR n > max_value THEN
            RETURN 'must be ' || what;
        END IF;
    END LOOP;
    RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION postrunner.settings_check() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    problem text := CASE
        WHEN NEW.type <> 'choice' THEN postrunner.setting_problem(NEW.type, NEW.value, NEW.min_value, NEW.max_value)
        WHEN NEW.value IS NULL OR NEW.value <> ALL (NEW.choices)
        THEN 'must be one of ' || array_to_string(NEW.choices, ', ') END;
BEGIN
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION USING
            MESSAGE = format('postrunner.settings: %s %s (got %L)', NEW.name, problem, left(NEW.value, 100)),
            ERRCODE = 'check_violation',
            HINT = coalesce('the setting is ' || NEW.note, 'see sql/README.md, "Settings"');
    END IF;
    RETURN NEW;
END
$fn$;

CREATE OR REPLACE TRIGGER settings_check
    BEFORE INSERT OR UPDATE ON postrunner.settings
    FOR EACH ROW EXECUTE FUNCTION postrunner.settings_check();

-- A numeric setting's value, or `fallback` when it is not set. Values are checked when
-- written, so the cast cannot fail.
CREATE OR REPLACE FUNCTION postrunner.setting_number(p_name text, fallback float8) RETURNS float8
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT value::float8 FROM postrunner.settings WHERE name = p_name), fallback)
$$;

-- A word setting's value (type 'choice'), or `fallback` when it is not set.
CREATE OR REPLACE FUNCTION postrunner.setting_choice(p_name text, fallback text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT value FROM postrunner.settings WHERE name = p_name), fallback)
$$;
