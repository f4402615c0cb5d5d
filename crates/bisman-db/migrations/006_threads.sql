-- Message threads and who takes part in them.
CREATE TABLE IF NOT EXISTS threads (
    id               TEXT PRIMARY KEY,
    tenant_id        UUID NOT NULL REFERENCES tenants(id),
    title            TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
    created_by       INTEGER NOT NULL REFERENCES users(id),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_message_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS threads_tenant_idx ON threads (tenant_id, last_message_at DESC NULLS LAST);

CREATE TABLE IF NOT EXISTS thread_participants (
    thread_id  TEXT NOT NULL REFERENCES threads(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    joined_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX IF NOT EXISTS thread_participants_user_idx ON thread_participants (user_id);
