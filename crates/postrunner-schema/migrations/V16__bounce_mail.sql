-- SMTP bounces (issue 9): an SMTP provider has no webhooks; its bounces and complaints
-- come back by mail. Each message it sends gets a VERP envelope sender (Return-Path)
-- built from this address, `<local>+<message token>@<domain>`, so a bounce names the
-- message it is about whatever the bouncing server quotes.
ALTER TABLE postrunner.providers
    ADD COLUMN bounce_address text CHECK (bounce_address IS NULL OR postrunner.is_email_address(bounce_address));
