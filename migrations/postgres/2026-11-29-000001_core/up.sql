-- Every time is Unix microseconds (BIGINT): exact, comparable and identical on both backends.
CREATE TABLE eshops (
    id BIGINT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    eshop_id BIGINT NOT NULL REFERENCES eshops (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_tokens_eshop ON api_tokens (eshop_id);

CREATE TABLE signature_keys (
    id TEXT PRIMARY KEY NOT NULL,
    eshop_id BIGINT NOT NULL REFERENCES eshops (id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE INDEX signature_keys_eshop ON signature_keys (eshop_id, created_at);

CREATE TABLE products (
    guid TEXT PRIMARY KEY NOT NULL,
    eshop_id BIGINT NOT NULL REFERENCES eshops (id) ON DELETE CASCADE,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    visibility TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    change_time BIGINT NOT NULL,
    UNIQUE (eshop_id, code)
);
CREATE INDEX products_eshop_creation ON products (eshop_id, creation_time, guid);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    eshop_id BIGINT NOT NULL,
    endpoint TEXT NOT NULL,
    queue TEXT NOT NULL,
    status TEXT NOT NULL,
    params TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    started_time BIGINT,
    completion_time BIGINT,
    attempt INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires BIGINT,
    result_secret TEXT NOT NULL,
    result_ext TEXT,
    result_content_type TEXT,
    result_size BIGINT,
    valid_until BIGINT,
    log TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_eshop_creation ON jobs (eshop_id, creation_time, id);
CREATE INDEX jobs_claim ON jobs (queue, eshop_id, creation_time, id) WHERE status = 'pending';
CREATE INDEX jobs_running ON jobs (queue, eshop_id) WHERE status = 'running';
CREATE INDEX jobs_lease ON jobs (lease_expires) WHERE status = 'running';
CREATE INDEX jobs_valid_until ON jobs (valid_until) WHERE status = 'completed';
CREATE INDEX jobs_creation ON jobs (creation_time);

CREATE TABLE idempotency_keys (
    eshop_id BIGINT NOT NULL,
    idem_key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (eshop_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

CREATE TABLE job_result_chunks (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job_id, seq)
);

-- The outbox: one row per event, written in the same transaction as the job's final status.
CREATE TABLE notifications (
    id TEXT PRIMARY KEY NOT NULL,
    eshop_id BIGINT NOT NULL,
    event TEXT NOT NULL,
    event_instance TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    created_at BIGINT NOT NULL,
    UNIQUE (event, event_instance)
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_eshop ON notifications (eshop_id, created_at);
