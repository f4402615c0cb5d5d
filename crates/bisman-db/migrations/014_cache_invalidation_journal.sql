-- Invalidations the cache store (Redis) missed because it was unreachable.
-- Each cache instance replays recent ones before it uses the store again,
-- so that a revoked permission or session cannot come back from a Redis
-- that was only out of reach, not wiped.
CREATE TABLE IF NOT EXISTS bisman_cache_invalidations (
    id          BIGSERIAL PRIMARY KEY,
    prefix      TEXT NOT NULL,
    work        JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS bisman_cache_invalidations_prefix_created_idx
    ON bisman_cache_invalidations (prefix, created_at);
