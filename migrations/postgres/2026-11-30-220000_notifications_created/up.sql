-- Retention deletes the oldest notifications first: without this index every pass of the
-- janitor read the whole table to find them.
CREATE INDEX notifications_created ON notifications (created_at);
