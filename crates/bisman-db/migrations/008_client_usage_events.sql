-- Client usage events: one row per tracked action in the ERP's front end.
CREATE TABLE IF NOT EXISTS client_usage_events (
    id           BIGSERIAL PRIMARY KEY,
    tenant_id    UUID NOT NULL,
    user_id      INTEGER,
    event_type   TEXT NOT NULL CHECK (length(event_type) BETWEEN 1 AND 100),
    module       TEXT,
    page         TEXT,
    metadata     JSONB NOT NULL DEFAULT '{}'::jsonb,
    occurred_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
