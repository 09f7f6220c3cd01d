-- Operators: people who may use the dashboard. Their tokens are stored hashed (SHA-256),
-- like the e-shops' API tokens, but in a table of their own: neither opens the other's door.
CREATE TABLE operators (
    name TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

-- Dashboard sessions, in the database so that every node of a cluster accepts them. The
-- cookie holds the session id; only its hash is stored. `csrf` is the token every form of
-- the session must send back.
CREATE TABLE operator_sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    operator TEXT NOT NULL REFERENCES operators (name) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX operator_sessions_expires ON operator_sessions (expires_at);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator);

-- Nodes record a heartbeat here so the dashboard can show which nodes are alive, with the
-- jobs each ended per minute over the last hour (kept in memory, written with the heartbeat).
CREATE TABLE node_heartbeats (
    node TEXT PRIMARY KEY NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    minutes TEXT NOT NULL DEFAULT ''
);
CREATE INDEX node_heartbeats_at ON node_heartbeats (heartbeat_at);

-- The jobs list filtered by status (`GET /api/system/jobs?status=…`) reads one e-shop's jobs
-- of that status newest first through this index, instead of every job of the e-shop.
CREATE INDEX jobs_eshop_status ON jobs (eshop_id, status, creation_time, id);
