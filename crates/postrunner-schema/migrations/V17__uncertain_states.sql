-- Sends whose outcome is uncertain (issue 9, part 7): a timeout, a dropped connection,
-- a 502 or 504, a worker killed mid-send. The provider may have taken the message, so
-- sending it again elsewhere at once could put it twice in a prospect's inbox. Such a
-- message is held until evidence (an event, a provider lookup) or the end of a wait
-- decides it. The new values are used from V18 on: an enum value added in a
-- transaction cannot be used by that same transaction.

-- A job whose last attempt may have reached its provider: no worker claims it; the
-- uncertain-send resolver (sql/outbox/uncertain.sql) ends the hold.
ALTER TYPE postrunner.job_state ADD VALUE IF NOT EXISTS 'held' AFTER 'retryable';
-- Its message, meanwhile.
ALTER TYPE postrunner.message_status ADD VALUE IF NOT EXISTS 'uncertain' AFTER 'sending';
-- Its reservation, meanwhile: the capacity stays used.
ALTER TYPE postrunner.attempt_outcome ADD VALUE IF NOT EXISTS 'uncertain' AFTER 'failed';
