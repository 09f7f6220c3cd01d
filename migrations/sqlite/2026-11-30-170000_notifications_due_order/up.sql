-- The webhook claim takes the oldest due notifications by (next_attempt_at, id): an index
-- in that order serves it up to its LIMIT, whatever the number of notifications waiting.
DROP INDEX notifications_due;
CREATE INDEX notifications_due ON notifications (next_attempt_at, id) WHERE status = 'pending';
