-- Two things every job paid for and nothing needed (docs/benchmarks.md, eleventh session).
--
-- The foreign key from attempts to their notification: an attempt row is only ever written
-- by the statement that moved its notification on (the two are one statement), and the
-- retention deletes a notification's attempts itself before the notification. The key
-- checked every attempt row with a `FOR KEY SHARE` lock on its notification (a lock record
-- in the WAL each, and a trigger run each).
ALTER TABLE notification_attempts DROP CONSTRAINT notification_attempts_notification_id_fkey;
-- A second index on the running jobs: lease recovery reads the running jobs through
-- `jobs_running` instead (never more than the workers of all nodes), and each claim wrote
-- one index entry fewer.
DROP INDEX jobs_lease;
