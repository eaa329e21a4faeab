-- Configuration tables keep routing's own rows in step: a lane per direction, an
-- address_usage row per sender address, usage and health rows per provider; and any
-- change that may free capacity opens every lane's gate (lanes are few; the next claim
-- recomputes the ones that are still blocked).
--
-- SECURITY DEFINER: operators and import write configuration; these keep postrunner's
-- own tables, which they need no privilege on.
-- Locks: the rows they write; wake_lanes updates every gated lane (it waits for a claim
-- holding a lane, which commits in milliseconds).

CREATE OR REPLACE FUNCTION postrunner.directions_add_lane() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.lanes (client, direction) SELECT client, name FROM new_directions
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER directions_add_lane
    AFTER INSERT ON postrunner.directions
    REFERENCING NEW TABLE AS new_directions
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.directions_add_lane();

CREATE OR REPLACE FUNCTION postrunner.sender_addresses_sync_usage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.address_usage AS u (address, client, provider, active)
    VALUES (NEW.address, NEW.client, NEW.provider, NEW.status = 'active')
    ON CONFLICT (address) DO UPDATE
       SET client = excluded.client,
           provider = excluded.provider,
           active = excluded.active,
           -- A changed limit or warm-up may free capacity before the slot computed
           -- under the old one (the claim re-checks the new limit on the locked row).
           next_slot_at = CASE
               WHEN (OLD.daily_limit, OLD.warmup_started_on) IS DISTINCT FROM (NEW.daily_limit, NEW.warmup_started_on)
               THEN least(u.next_slot_at, coalesce(u.last_sent_at + interval '24 hours' / NEW.daily_limit, '-infinity'))
               ELSE u.next_slot_at END;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER sender_addresses_sync_usage
    AFTER INSERT OR UPDATE ON postrunner.sender_addresses
    FOR EACH ROW EXECUTE FUNCTION postrunner.sender_addresses_sync_usage();


CREATE OR REPLACE FUNCTION postrunner.providers_add_rows() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.provider_usage (provider) SELECT name FROM new_providers ON CONFLICT DO NOTHING;
    INSERT INTO postrunner.provider_health (provider) SELECT name FROM new_providers ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER providers_add_rows
    AFTER INSERT ON postrunner.providers
    REFERENCING NEW TABLE AS new_providers
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.providers_add_rows();

-- A budget or rate set or changed mid-month: recount the month from the ledger.
CREATE OR REPLACE FUNCTION postrunner.providers_recount_usage() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    UPDATE postrunner.provider_usage SET month = NULL, minute = NULL WHERE provider = NEW.name;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER providers_recount_usage
    AFTER UPDATE OF per_minute, monthly_budget, price_per_1000, monthly_fee ON postrunner.providers
    FOR EACH ROW EXECUTE FUNCTION postrunner.providers_recount_usage();

-- ---------------------------------------------------------------------------------
-- Waking gated lanes: any configuration change that may free capacity opens every gate
-- (lanes are few; the next claim recomputes the ones that are still blocked).
CREATE OR REPLACE FUNCTION postrunner.wake_lanes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    -- A gated lane waits in line at its gate's time (claim_messages.sql): opened, it
    -- takes its place now. A parked one (nothing waiting) stays parked.
    UPDATE postrunner.lanes
       SET ready_at = '-infinity', waiting_for = NULL, waiting_detail = NULL,
           queue_at = least(queue_at, now())
     WHERE ready_at > '-infinity';
    -- Workers asleep until a gate's time wake up now (they also skip the routed claim
    -- while no gate is open: crates/postrunner-queue/src/executor/fetch.rs).
    IF FOUND THEN
        PERFORM postrunner.notify_workers();
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER sender_addresses_wake_lanes AFTER INSERT OR UPDATE OR DELETE ON postrunner.sender_addresses
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE OR REPLACE TRIGGER providers_wake_lanes AFTER INSERT OR UPDATE OR DELETE ON postrunner.providers
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE OR REPLACE TRIGGER direction_providers_wake_lanes AFTER INSERT OR UPDATE OR DELETE ON postrunner.direction_providers
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE OR REPLACE TRIGGER directions_wake_lanes AFTER UPDATE ON postrunner.directions
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE OR REPLACE TRIGGER clients_wake_lanes AFTER UPDATE ON postrunner.clients
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE OR REPLACE TRIGGER settings_wake_lanes AFTER INSERT OR UPDATE ON postrunner.settings
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
CREATE OR REPLACE TRIGGER provider_health_wake_lanes AFTER UPDATE OF state ON postrunner.provider_health
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION postrunner.wake_lanes();

-- ---------------------------------------------------------------------------------
-- Mailbox group limits (mailbox_groups.sql). A new limit gets its counter row, counting
-- what the client already sent to that group in the current client-local hour and day
-- (from the ledger, and for sends made before the client had group limits, from the
-- recipients' domains), so that a limit set mid-day holds for the rest of it. Then the
-- waiting messages of the clients that now have limits move out of their lanes
-- without a group into lanes per group (or, for domains not known yet, into lanes that
-- wait for the MX lookup, which they are queued for).
CREATE OR REPLACE FUNCTION postrunner.mailbox_group_limits_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, postrunner, pg_temp AS $$
BEGIN
    INSERT INTO postrunner.mailbox_group_usage (client, mailbox_group, hour, sent_in_hour, day, sent_on_day)
    SELECT n.client, n.mailbox_group, date_trunc('hour', now() AT TIME ZONE c.time_zone),
           (SELECT count(*) FROM postrunner.send_attempts a
              JOIN postrunner.outbox o ON o.id = a.message_id
              LEFT JOIN postrunner.recipient_domains r ON r.domain = postrunner.recipient_domain(o.to_address)
             WHERE a.day = postrunner.local_day(now(), c.time_zone) AND a.client = n.client
               AND postrunner.counts_as_sent(a.outcome)
               AND coalesce(a.mailbox_group, r.mailbox_group) = n.mailbox_group
               AND date_trunc('hour', a.reserved_at AT TIME ZONE c.time_zone) = date_trunc('hour', now() AT TIME ZONE c.time_zone)),
           postrunner.local_day(now(), c.time_zone),
           (SELECT count(*) FROM postrunner.send_attempts a
              JOIN postrunner.outbox o ON o.id = a.message_id
              LEFT JOIN postrunner.recipient_domains r ON r.domain = postrunner.recipient_domain(o.to_address)
             WHERE a.day = postrunner.local_day(now(), c.time_zone) AND a.client = n.client
               AND postrunner.counts_as_sent(a.outcome)
               AND coalesce(a.mailbox_group, r.mailbox_group) = n.mailbox_group)
      FROM new_limits n
      JOIN postrunner.clients c ON c.name = n.client
    ON CONFLICT DO NOTHING;
    -- The recipient domains of their waiting messages that no row knows yet are looked
    -- up (recipient_domains.sql): their messages wait for it in lanes '?'.
    INSERT INTO postrunner.recipient_domains (domain, source)
    SELECT DISTINCT postrunner.recipient_domain(o.to_address), 'pending'
      FROM postrunner.jobs j
      JOIN postrunner.lanes l ON l.id = j.lane
      JOIN postrunner.outbox o ON o.job_id = j.id
     WHERE l.mailbox_group = '' AND l.client IN (SELECT DISTINCT client FROM new_limits)
       AND j.state IN ('available', 'scheduled', 'retryable')
       AND NOT EXISTS (SELECT 1 FROM postrunner.recipient_domains r
                        WHERE r.domain = postrunner.recipient_domain(o.to_address))
    ON CONFLICT DO NOTHING;
    PERFORM postrunner.relane(ARRAY(
        SELECT l.id FROM postrunner.lanes l
         WHERE l.mailbox_group = '' AND l.client IN (SELECT DISTINCT client FROM new_limits)));
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER mailbox_group_limits_added
    AFTER INSERT ON postrunner.mailbox_group_limits
    REFERENCING NEW TABLE AS new_limits
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.mailbox_group_limits_added();
CREATE OR REPLACE TRIGGER mailbox_group_limits_wake_lanes AFTER INSERT OR UPDATE OR DELETE ON postrunner.mailbox_group_limits
    FOR EACH STATEMENT EXECUTE FUNCTION postrunner.wake_lanes();
