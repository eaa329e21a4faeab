-- The limits routing applies: warm-up, an address's effective daily limit, which
-- ledger outcomes use capacity, a provider's sends this month, and which providers a
-- direction may use.
--
-- Locks: none; read-only helpers.

-- The limit a warming address has on its day number `day_index` (0 = the day warm-up
-- started): the schedule's entry, then growth by warmup_growth per day.
CREATE OR REPLACE FUNCTION postrunner.warmup_limit(day_index integer) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN day_index < cardinality(s.steps) THEN s.steps[greatest(day_index, 0) + 1]
        ELSE least(floor(s.steps[cardinality(s.steps)]
                         * power(s.growth, least(day_index - cardinality(s.steps) + 1, 200))), 2147483647)::integer
    END
      FROM (SELECT coalesce((SELECT string_to_array(value, ',')::integer[] FROM postrunner.settings
                              WHERE name = 'warmup_schedule'), '{5,8,12,18,25,35,50}') AS steps,
                   postrunner.setting_number('warmup_growth', 1.25) AS growth) s
$$;

-- The number of messages an address may send on `on_day`: its daily_limit, or less
-- while it warms up. Never more than daily_limit.
CREATE OR REPLACE FUNCTION postrunner.effective_daily_limit(daily_limit integer, warmup_started_on date, on_day date)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN warmup_started_on IS NULL THEN daily_limit
                ELSE least(daily_limit, postrunner.warmup_limit(on_day - warmup_started_on)) END
$$;

-- How many messages a monthly budget pays for after the plan's fixed fee, or NULL when
-- there is no budget (or the messages are free and the fee fits).
CREATE OR REPLACE FUNCTION postrunner.budget_messages(budget numeric, fee numeric, price_per_1000 numeric)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN budget IS NULL THEN NULL
                WHEN price_per_1000 = 0 THEN CASE WHEN fee > budget THEN 0 END
                ELSE greatest(floor((budget - fee) * 1000 / price_per_1000), 0)::integer END
$$;

-- The month (UTC) an instant falls in, as its first day: budgets count per UTC month.
CREATE OR REPLACE FUNCTION postrunner.utc_month(at timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT date_trunc('month', at AT TIME ZONE 'UTC')::date $$;

-- The instant a client-local day ends (the next one starts).
CREATE OR REPLACE FUNCTION postrunner.day_end(day date, tz text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT ((day + 1)::timestamp AT TIME ZONE tz) $$;

-- Outcomes that use capacity.
CREATE OR REPLACE FUNCTION postrunner.counts_as_sent(outcome postrunner.attempt_outcome) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT outcome <> 'released' $$;

-- The sends of provider p_provider that count against its month starting p_month
-- (UTC), from the ledger: how a provider's budget counter starts each month.
CREATE OR REPLACE FUNCTION postrunner.provider_month_sends(p_provider text, p_month date) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT count(*)::integer FROM postrunner.send_attempts s
     WHERE s.provider = p_provider AND s.reserved_at >= p_month::timestamp AT TIME ZONE 'UTC'
       AND postrunner.counts_as_sent(s.outcome)
$$;

-- The rule "a direction may use the providers listed for it in direction_providers,
-- or, when none is listed, every provider". (report_capacity_rollup spells the same
-- rule out, since the reporting role reads no configuration table.)
CREATE OR REPLACE FUNCTION postrunner.direction_may_use(p_client text, p_direction text, p_provider text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM postrunner.direction_providers dp
                    WHERE (dp.client, dp.direction, dp.provider) = (p_client, p_direction, p_provider))
        OR NOT EXISTS (SELECT 1 FROM postrunner.direction_providers dp
                        WHERE (dp.client, dp.direction) = (p_client, p_direction))
$$;
