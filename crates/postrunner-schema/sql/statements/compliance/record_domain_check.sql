-- The latest check of one sender domain: one row per domain, replaced by each check
-- (the row lock of that domain's row, for the statement).
INSERT INTO postrunner.domain_checks AS c
       (domain, checked_at, spf_ok, spf_detail, dkim_ok, dkim_detail, dmarc_ok, dmarc_detail, mx_ok, mx_detail)
VALUES ($1, now(), $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (domain) DO UPDATE
   SET checked_at = now(),
       spf_ok = excluded.spf_ok, spf_detail = excluded.spf_detail,
       dkim_ok = excluded.dkim_ok, dkim_detail = excluded.dkim_detail,
       dmarc_ok = excluded.dmarc_ok, dmarc_detail = excluded.dmarc_detail,
       mx_ok = excluded.mx_ok, mx_detail = excluded.mx_detail
