CREATE INDEX jobs_lease ON jobs (lease_expires) WHERE status = 'running';
CREATE TABLE notification_attempts_old (
    notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    attempted_at BIGINT NOT NULL,
    url TEXT,
    status_code INTEGER,
    duration_ms BIGINT NOT NULL,
    error TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (notification_id, attempt)
);
INSERT INTO notification_attempts_old SELECT * FROM notification_attempts;
DROP TABLE notification_attempts;
ALTER TABLE notification_attempts_old RENAME TO notification_attempts;
