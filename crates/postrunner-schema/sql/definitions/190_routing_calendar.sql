-- Days and sending windows: the client-local calendar day of an instant, when the next
-- one starts, and whether a direction's window is open.
--
-- Locks: none; pure functions.

-- The calendar day at `at` in time zone `tz`, and the instant the next one starts.
CREATE OR REPLACE FUNCTION postrunner.local_day(at timestamptz, tz text) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (at AT TIME ZONE tz)::date $$;

CREATE OR REPLACE FUNCTION postrunner.next_day_start(at timestamptz, tz text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT (((at AT TIME ZONE tz)::date + 1)::timestamp AT TIME ZONE tz) $$;

-- Is a sending window (ISO days, start and end time of day, time zone) open at `at`?
CREATE OR REPLACE FUNCTION postrunner.window_is_open(send_days smallint[], window_start time, window_end time, tz text,
                                          at timestamptz) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT extract(isodow FROM (at AT TIME ZONE tz))::smallint = ANY (send_days)
       AND (at AT TIME ZONE tz)::time >= window_start
       AND ((at AT TIME ZONE tz)::time < window_end OR window_end = '24:00')
$$;

-- The next instant after `at` at which the window opens (within the coming week).
CREATE OR REPLACE FUNCTION postrunner.window_opens_at(send_days smallint[], window_start time, tz text, at timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT min(((at AT TIME ZONE tz)::date + d + window_start) AT TIME ZONE tz)
      FROM generate_series(0, 7) AS d
     WHERE extract(isodow FROM (at AT TIME ZONE tz)::date + d)::smallint = ANY (send_days)
       AND (((at AT TIME ZONE tz)::date + d + window_start) AT TIME ZONE tz) > at
$$;
