-- Sessions. Only SHA-256 hashes of the session and refresh tokens are stored:
-- a leaked table (or backup) gives nobody a usable token.
CREATE TABLE IF NOT EXISTS user_sessions (
    id                   BIGSERIAL PRIMARY KEY,
    tenant_id            UUID NOT NULL REFERENCES tenants(id),
    user_id              INTEGER NOT NULL REFERENCES users(id),
    user_type            TEXT NOT NULL,
    token_hash           TEXT NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    refresh_token_hash   TEXT UNIQUE CHECK (refresh_token_hash ~ '^[0-9a-f]{64}$'),
    is_active            BOOLEAN NOT NULL DEFAULT true,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at           TIMESTAMPTZ NOT NULL,
    refresh_expires_at   TIMESTAMPTZ,
    revoked_at           TIMESTAMPTZ,
    ip_address           TEXT,
    user_agent           TEXT
);
