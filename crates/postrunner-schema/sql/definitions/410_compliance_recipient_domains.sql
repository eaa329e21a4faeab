-- Recipient domains' mailbox groups, from their MX hosts (issue 10, part 7). A client
-- with mailbox group limits sends a message to a domain no row knows yet: the INSERT
-- records the domain 'pending' (outbox/enqueue_jobs.sql) and the message waits in a
-- lane gated for the lookup ('?', route_lane.sql). The classify_recipient_domains task
-- (src/compliance/recipient_domains.rs, every 15 s) looks each pending domain's MX up,
-- and record_recipient_domains places it in the group whose mx_suffixes one of its MX
-- hosts ends with (a company on Google Workspace is 'google'), or in none; then the
-- waiting messages move to their lanes (relane, mailbox_groups.sql). A failed lookup is
-- tried again for 10 minutes, then the domain is in no group: mail is never held for a
-- resolver outage longer than that.
--
-- Locks: the recipient_domains rows it updates; the jobs relane moves (SKIP LOCKED).

-- Up to p_limit domains waiting for their lookup.
CREATE OR REPLACE FUNCTION postrunner.pending_recipient_domains(p_limit integer) RETURNS SETOF text
LANGUAGE sql STABLE AS $$
    SELECT r.domain FROM postrunner.recipient_domains r WHERE r.source = 'pending' ORDER BY r.domain LIMIT p_limit
$$;

-- The group whose MX suffixes match one of the hosts (the first by name), or NULL.
CREATE OR REPLACE FUNCTION postrunner.mailbox_group_of_hosts(p_hosts text[]) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT g.name
      FROM postrunner.mailbox_groups g
     WHERE EXISTS (SELECT 1 FROM unnest(p_hosts) h, unnest(g.mx_suffixes) s
                    WHERE lower(rtrim(h, '.')) = s OR lower(rtrim(h, '.')) LIKE '%.' || s)
     ORDER BY g.name
     LIMIT 1
$$;

-- Records lookups: p_domains[i]'s MX hosts are p_hosts[i] (comma-separated; '' for
-- none), or its lookup failed (p_failed[i], with p_hosts[i] saying why). Then moves the
-- messages waiting for any classified domain. Returns how many jobs moved.
CREATE OR REPLACE FUNCTION postrunner.record_recipient_domains(p_domains text[], p_hosts text[], p_failed boolean[])
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    UPDATE postrunner.recipient_domains r
       SET source = 'mx',
           mailbox_group = CASE WHEN x.failed THEN NULL
                                ELSE postrunner.mailbox_group_of_hosts(string_to_array(nullif(x.hosts, ''), ',')) END,
           mx_hosts = x.hosts,
           looked_up_at = now()
      FROM unnest(p_domains, p_hosts, p_failed) AS x(domain, hosts, failed)
     WHERE r.domain = x.domain AND r.source = 'pending'
       AND (NOT x.failed OR r.seen_at <= now() - interval '10 minutes');
    UPDATE postrunner.recipient_domains r
       SET looked_up_at = now(), mx_hosts = x.hosts
      FROM unnest(p_domains, p_hosts, p_failed) AS x(domain, hosts, failed)
     WHERE r.domain = x.domain AND r.source = 'pending' AND x.failed;
    RETURN postrunner.relane(ARRAY(SELECT l.id FROM postrunner.lanes l WHERE l.mailbox_group = '?'));
END
$fn$;
