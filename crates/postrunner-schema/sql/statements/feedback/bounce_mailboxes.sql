-- The bounce mailboxes to read: one per enabled provider that has one. No locks.
SELECT name, bounce_mailbox, bounce_mailbox_secret_env
  FROM postrunner.providers
 WHERE enabled AND bounce_mailbox IS NOT NULL
 ORDER BY name
