-- The same two cuts as on PostgreSQL (see its migration of this version). SQLite cannot
-- drop a foreign key: the attempts table is made again without it.
CREATE TABLE notification_attempts_new (
    notification_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    attempted_at BIGINT NOT NULL,
    url TEXT,
    status_code INTEGER,
    duration_ms BIGINT NOT NULL,
    error TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (notification_id, attempt)
);
INSERT INTO notification_attempts_new
    SELECT notification_id, attempt, attempted_at, url, status_code, duration_ms, error,
        response_excerpt
    FROM notification_attempts;
DROP TABLE notification_attempts;
ALTER TABLE notification_attempts_new RENAME TO notification_attempts;
DROP INDEX jobs_lease;
