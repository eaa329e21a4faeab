-- Rolling the ledger up into send_rollups_hourly and send_rollups_monthly (V26), and
-- reading what is not rolled up yet.
--
-- A ledger row is rolled up once its reservation is an hour old: by then it was
-- released or not (a release happens when a send fails, within the job timeout, or
-- when a stopping worker gives back a prefetched job), so its counts never change
-- afterwards. The watermark only moves over a contiguous run of settled rows, so a row
-- is never skipped; rows past it are read live (a few thousand at most).
--
-- Locks: the rollup_progress row (FOR UPDATE: concurrent runs serialise, each adds a
-- row once), and the rollup rows it upserts.

-- Rows of the ledger past the watermark.
CREATE OR REPLACE FUNCTION postrunner.unrolled_sends() RETURNS SETOF postrunner.send_attempts
LANGUAGE sql STABLE AS $$
    SELECT a.* FROM postrunner.send_attempts a
     WHERE a.id > (SELECT p.last_id FROM postrunner.rollup_progress p WHERE p.name = 'sends')
$$;

-- Rolls up the settled rows past the watermark (reserved before now - p_settle);
-- returns how many.
CREATE OR REPLACE FUNCTION postrunner.rollup_sends(p_settle interval DEFAULT interval '1 hour') RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    last bigint;
    upto bigint;
    rolled bigint;
BEGIN
    SELECT p.last_id INTO last FROM postrunner.rollup_progress p WHERE p.name = 'sends' FOR UPDATE;
    -- Up to the first row that has not settled (or the newest row).
    upto := coalesce(
        (SELECT min(a.id) - 1 FROM postrunner.send_attempts a
          WHERE a.id > last AND a.reserved_at >= now() - p_settle),
        (SELECT max(a.id) FROM postrunner.send_attempts a WHERE a.id > last),
        last);
    IF upto <= last THEN
        RETURN 0;
    END IF;
    INSERT INTO postrunner.send_rollups_hourly AS r (hour, client, direction, provider, used, sent)
    SELECT date_trunc('hour', a.reserved_at), a.client, a.direction, a.provider,
           count(*) FILTER (WHERE postrunner.counts_as_sent(a.outcome)), count(*) FILTER (WHERE a.outcome = 'sent')
      FROM postrunner.send_attempts a
     WHERE a.id > last AND a.id <= upto
     GROUP BY 1, 2, 3, 4
    ON CONFLICT (hour, client, direction, provider)
    DO UPDATE SET used = r.used + excluded.used, sent = r.sent + excluded.sent;
    INSERT INTO postrunner.send_rollups_monthly AS r (month, client, provider, used, sent)
    SELECT postrunner.utc_month(a.reserved_at), a.client, a.provider,
           count(*) FILTER (WHERE postrunner.counts_as_sent(a.outcome)), count(*) FILTER (WHERE a.outcome = 'sent')
      FROM postrunner.send_attempts a
     WHERE a.id > last AND a.id <= upto
     GROUP BY 1, 2, 3
    ON CONFLICT (month, client, provider)
    DO UPDATE SET used = r.used + excluded.used, sent = r.sent + excluded.sent;
    SELECT count(*) INTO rolled FROM postrunner.send_attempts a WHERE a.id > last AND a.id <= upto;
    UPDATE postrunner.rollup_progress SET last_id = upto, rolled_at = now() WHERE name = 'sends';
    RETURN rolled;
END
$fn$;

-- Sends per month, client and provider: the rollups plus the rows past the watermark.
-- SECURITY DEFINER: report_cost calls it as the reporting role, which reads no ledger
-- table; it returns counts only, and the view filters them by the caller's clients.
CREATE OR REPLACE FUNCTION postrunner.monthly_sends(p_from date)
RETURNS TABLE (month date, client text, provider text, used bigint, sent bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
    SELECT x.month, x.client, x.provider, sum(x.used)::bigint, sum(x.sent)::bigint
      FROM (SELECT m.month, m.client, m.provider, m.used, m.sent
              FROM postrunner.send_rollups_monthly m WHERE m.month >= p_from
            UNION ALL
            SELECT postrunner.utc_month(u.reserved_at), u.client, u.provider,
                   (postrunner.counts_as_sent(u.outcome))::int, (u.outcome = 'sent')::int
              FROM postrunner.unrolled_sends() u
             WHERE u.reserved_at >= p_from::timestamp AT TIME ZONE 'UTC') x
     GROUP BY 1, 2, 3
$$;

-- Sends accepted since p_since, per client, direction and provider (whole hours from
-- the rollups, then the rows past the watermark).
CREATE OR REPLACE FUNCTION postrunner.sends_since(p_since timestamptz)
RETURNS TABLE (client text, direction text, provider text, sent bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.client, x.direction, x.provider, sum(x.sent)::bigint
      FROM (SELECT h.client, h.direction, h.provider, h.sent
              FROM postrunner.send_rollups_hourly h WHERE h.hour >= date_trunc('hour', p_since)
            UNION ALL
            SELECT u.client, u.direction, u.provider, (u.outcome = 'sent')::int
              FROM postrunner.unrolled_sends() u WHERE u.reserved_at >= p_since) x
     GROUP BY 1, 2, 3
$$;

-- Sends accepted per UTC hour and provider since p_since (the status page's chart):
-- the rollups, then the rows past the watermark.
CREATE OR REPLACE FUNCTION postrunner.hourly_sends(p_since timestamptz)
RETURNS TABLE (hour timestamptz, provider text, sent bigint)
LANGUAGE sql STABLE AS $$
    SELECT x.hour, x.provider, sum(x.sent)::bigint
      FROM (SELECT h.hour, h.provider, h.sent
              FROM postrunner.send_rollups_hourly h WHERE h.hour >= date_trunc('hour', p_since)
            UNION ALL
            SELECT date_trunc('hour', u.reserved_at), u.provider, (u.outcome = 'sent')::int
              FROM postrunner.unrolled_sends() u WHERE u.reserved_at >= date_trunc('hour', p_since)) x
     GROUP BY 1, 2
$$;
