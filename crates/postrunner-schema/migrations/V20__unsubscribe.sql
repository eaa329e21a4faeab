-- One-click unsubscribe (issue 10, parts 1 and 2): a suppression made from a message's
-- signed unsubscribe link names that message, and the page shows the client's name.
-- Functions are in sql/feedback/unsubscribe.sql.
ALTER TABLE postrunner.suppressions
    -- The message whose unsubscribe link made this suppression (NULL: another source).
    ADD COLUMN message_id uuid;
ALTER TABLE postrunner.clients
    -- How the unsubscribe page names the client (NULL: its name).
    ADD COLUMN display_name text
        CHECK (display_name !~ '[[:cntrl:]]' AND length(display_name) BETWEEN 1 AND 200);
