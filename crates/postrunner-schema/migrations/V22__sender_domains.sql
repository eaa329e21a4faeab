-- DKIM (issue 10, part 4): the sender domains and who signs their mail. For
-- signer = 'postrunner' (SMTP providers), workers sign with the private key in the
-- variable key_env or the file key_file (src/providers/dkim.rs); for 'provider' the HTTP
-- provider signs with its own key at that selector, recorded so that the domain checks
-- know which public key to expect.
CREATE TABLE postrunner.sender_domains (
    domain     text PRIMARY KEY CHECK (domain ~ '^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$'),
    client     text REFERENCES postrunner.clients (name) ON UPDATE CASCADE,
    selector   text NOT NULL CHECK (selector ~ '^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$'),
    signer     text NOT NULL DEFAULT 'postrunner' CHECK (signer IN ('postrunner', 'provider')),
    algorithm  text NOT NULL DEFAULT 'rsa-sha256' CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
    key_env    text CHECK (key_env ~ '^[A-Z_][A-Z0-9_]*$'),
    key_file   text CHECK (key_file ~ '^/'),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sender_domains_key CHECK (signer = 'provider' OR key_env IS NOT NULL OR key_file IS NOT NULL)
);
