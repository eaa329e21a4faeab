-- SPF, DKIM, DMARC and MX checks of the sender domains (issue 10, part 5): the last
-- result per domain, written by `postrunner check-domains` and the daily check_domains
-- task (src/compliance/domains.rs); report_domains shows them (sql/views/domains.sql).
CREATE TABLE postrunner.domain_checks (
    domain       text PRIMARY KEY REFERENCES postrunner.sender_domains (domain) ON DELETE CASCADE ON UPDATE CASCADE,
    checked_at   timestamptz NOT NULL,
    spf_ok       boolean NOT NULL,
    spf_detail   text NOT NULL,
    dkim_ok      boolean NOT NULL,
    dkim_detail  text NOT NULL,
    dmarc_ok     boolean NOT NULL,
    dmarc_detail text NOT NULL,
    mx_ok        boolean NOT NULL,
    mx_detail    text NOT NULL
);

INSERT INTO postrunner.schedules (name, cron, kind, priority) VALUES
    ('check_domains', '0 0 6 * * *', 'system.check_domains', 20);
