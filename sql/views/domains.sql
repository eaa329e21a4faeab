-- Sender domains and their last DNS checks (src/compliance/domains.rs): `ok` when SPF,
-- DKIM, DMARC and MX all pass; each check's detail says what was found or is missing.
-- NULL checks: the domain was never checked (`postrunner check-domains`).
CREATE OR REPLACE VIEW postrunner.report_domains AS
SELECT d.domain, d.client, d.selector, d.signer,
       c.spf_ok AND c.dkim_ok AND c.dmarc_ok AND c.mx_ok AS ok,
       c.spf_ok, c.spf_detail, c.dkim_ok, c.dkim_detail, c.dmarc_ok, c.dmarc_detail, c.mx_ok, c.mx_detail,
       c.checked_at
  FROM postrunner.sender_domains d
  LEFT JOIN postrunner.domain_checks c ON c.domain = d.domain
 WHERE (SELECT postrunner.may_act_for(NULL)) OR d.client = ANY ((SELECT postrunner.bound_clients())::text[]);
