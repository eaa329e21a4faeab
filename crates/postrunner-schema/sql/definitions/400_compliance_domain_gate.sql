-- What a sender domain failing its DNS checks does (issue 10, part 5). After
-- `postrunner check-domains` or the daily check_domains task stored the results in
-- domain_checks (src/compliance/domains.rs), postrunner.apply_domain_checks():
--   - fires one alert per failing domain (domain_checks_failed, subject the domain,
--     detail the failed checks) and resolves it once the domain passes;
--   - with the setting domain_check_policy = 'block', also pauses the domain's active
--     sender addresses (status 'paused', status_reason domain_block_reason(domain)), so
--     routing stops using them at once, and resumes exactly those (same reason) when the
--     domain passes again, or when the policy is back to 'warn'. Addresses an operator
--     or a bounce pause paused are left as they are.
-- tests/domain_checks.rs.
--
-- Locks: the alerts and sender_addresses rows it changes (each address's usage row
-- through the sync trigger: a claim holds it for milliseconds).

-- The status_reason of an address paused because its domain fails its checks.
CREATE OR REPLACE FUNCTION postrunner.domain_block_reason(p_domain text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT format('blocked: its sender domain %s fails its DNS checks (report_domains)', p_domain)
$$;

-- Each sender domain's verdict: failing (checked, and a check failed) and which.
CREATE OR REPLACE FUNCTION postrunner.domain_verdicts()
RETURNS TABLE (domain text, failing boolean, failures text)
LANGUAGE sql STABLE AS $$
    SELECT d.domain,
           c.domain IS NOT NULL AND NOT (c.spf_ok AND c.dkim_ok AND c.dmarc_ok AND c.mx_ok),
           concat_ws('; ', CASE WHEN NOT c.spf_ok THEN 'SPF: ' || c.spf_detail END,
                           CASE WHEN NOT c.dkim_ok THEN 'DKIM: ' || c.dkim_detail END,
                           CASE WHEN NOT c.dmarc_ok THEN 'DMARC: ' || c.dmarc_detail END,
                           CASE WHEN NOT c.mx_ok THEN 'MX: ' || c.mx_detail END)
      FROM postrunner.sender_domains d
      LEFT JOIN postrunner.domain_checks c ON c.domain = d.domain
$$;

CREATE OR REPLACE FUNCTION postrunner.apply_domain_checks(
    OUT fired integer, OUT resolved integer, OUT paused integer, OUT resumed integer)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, postrunner, pg_temp
AS $fn$
DECLARE
    block boolean := postrunner.setting_choice('domain_check_policy', 'warn') = 'block';
BEGIN
    INSERT INTO postrunner.alerts (kind, subject, detail)
    SELECT 'domain_checks_failed', v.domain,
           format('%s fails its DNS checks (%s): %s', v.domain,
                  CASE WHEN block THEN 'its addresses are paused' ELSE 'warned only' END, v.failures)
      FROM postrunner.domain_verdicts() v
     WHERE v.failing
    ON CONFLICT (kind, subject) WHERE state = 'firing' DO NOTHING;
    GET DIAGNOSTICS fired = ROW_COUNT;

    UPDATE postrunner.alerts a
       SET state = 'resolved', resolved_at = now()
     WHERE a.kind = 'domain_checks_failed' AND a.state = 'firing'
       AND NOT EXISTS (SELECT 1 FROM postrunner.domain_verdicts() v WHERE v.domain = a.subject AND v.failing);
    GET DIAGNOSTICS resolved = ROW_COUNT;

    UPDATE postrunner.sender_addresses s
       SET status = 'paused', paused_at = now(), status_reason = postrunner.domain_block_reason(v.domain)
      FROM postrunner.domain_verdicts() v
     WHERE block AND v.failing AND s.status = 'active'
       AND lower(split_part(s.address, '@', 2)) = v.domain;
    GET DIAGNOSTICS paused = ROW_COUNT;

    -- Those this gate paused, once their domain passes (or is no longer listed), or
    -- every one of them when the policy is 'warn'.
    UPDATE postrunner.sender_addresses s
       SET status = 'active', status_reason = NULL
     WHERE s.status = 'paused'
       AND s.status_reason = postrunner.domain_block_reason(lower(split_part(s.address, '@', 2)))
       AND (NOT block OR NOT EXISTS (SELECT 1 FROM postrunner.domain_verdicts() v
                                      WHERE v.domain = lower(split_part(s.address, '@', 2)) AND v.failing));
    GET DIAGNOSTICS resumed = ROW_COUNT;
END
$fn$;
