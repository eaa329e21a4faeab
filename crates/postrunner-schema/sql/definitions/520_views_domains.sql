-- Sender domains and their last DNS checks (src/compliance/domains.rs): `ok` when SPF,
-- DKIM, DMARC and MX all pass; each check's detail says what was found or is missing.
-- NULL checks: the domain was never checked (`postrunner check-domains`).
--
-- Every view here is a security barrier: a login's own WHERE clause (a cast that fails
-- on a value, a function of its own that prints its arguments) runs only on the rows
-- the view's filter lets through, never before it (tests/tenancy.rs,
-- no_view_a_bound_login_reads_leaks_another_clients_rows).
CREATE OR REPLACE VIEW postrunner.report_domains WITH (security_barrier) AS
SELECT d.domain, d.client, d.selector, d.signer,
       c.spf_ok AND c.dkim_ok AND c.dmarc_ok AND c.mx_ok AS ok,
       c.spf_ok, c.spf_detail, c.dkim_ok, c.dkim_detail, c.dmarc_ok, c.dmarc_detail, c.mx_ok, c.mx_detail,
       c.checked_at
  FROM postrunner.sender_domains d
  LEFT JOIN postrunner.domain_checks c ON c.domain = d.domain
 WHERE (SELECT postrunner.may_act_for(NULL)) OR d.client = ANY ((SELECT postrunner.bound_clients())::text[]);
