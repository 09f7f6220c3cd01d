CREATE INDEX jobs_lease ON jobs (lease_expires) WHERE status = 'running';
ALTER TABLE notification_attempts ADD CONSTRAINT notification_attempts_notification_id_fkey
    FOREIGN KEY (notification_id) REFERENCES notifications (id) ON DELETE CASCADE;
