-- Webhook subscriptions: one URL per event per e-shop.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    eshop_id BIGINT NOT NULL REFERENCES eshops (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (eshop_id, event)
);

-- Delivery state of the outbox rows: where the last attempt went, how it ended, and the
-- short claim (lease) that keeps two nodes from delivering one notification at once.
ALTER TABLE notifications ADD COLUMN webhook_id TEXT;
ALTER TABLE notifications ADD COLUMN url TEXT;
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
ALTER TABLE notifications ADD COLUMN claim_expires BIGINT;
ALTER TABLE notifications ADD COLUMN last_attempt_at BIGINT;
ALTER TABLE notifications ADD COLUMN last_status_code INTEGER;
ALTER TABLE notifications ADD COLUMN last_duration_ms BIGINT;
ALTER TABLE notifications ADD COLUMN last_error TEXT;
ALTER TABLE notifications ADD COLUMN redelivery BOOLEAN NOT NULL DEFAULT FALSE;

-- Every delivery attempt, kept as long as its notification.
CREATE TABLE notification_attempts (
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
