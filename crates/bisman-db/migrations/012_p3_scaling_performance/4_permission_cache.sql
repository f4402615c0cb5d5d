-- P3 step 4: the permission cache table for installs without Redis (spec §5).
-- The table is the spec's DDL; expires_at is a naive TIMESTAMP holding UTC.
CREATE TABLE IF NOT EXISTS permission_cache (
    id SERIAL PRIMARY KEY,
    cache_key VARCHAR(255) NOT NULL UNIQUE,
    cache_value JSONB NOT NULL,
    user_id INTEGER,
    tenant_id UUID,
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS permission_cache_expires_idx ON permission_cache (expires_at);
CREATE INDEX IF NOT EXISTS permission_cache_user_idx ON permission_cache (user_id) WHERE user_id IS NOT NULL;

-- Spec §5: `SELECT get_cached_permission('perm:user:123');` The cached value,
-- or NULL when it is absent or expired.
CREATE OR REPLACE FUNCTION get_cached_permission(p_key TEXT)
RETURNS JSONB LANGUAGE sql STABLE SET search_path FROM CURRENT
AS $$
    SELECT cache_value FROM permission_cache
    WHERE cache_key = p_key AND expires_at > (now() AT TIME ZONE 'UTC')
$$;

-- Spec §5: `SELECT set_cached_permission('perm:user:123', '{"role":"ADMIN"}'::JSONB, 300);`
-- Stores (or replaces) a value for p_ttl_seconds seconds.
CREATE OR REPLACE FUNCTION set_cached_permission(p_key TEXT, p_value JSONB, p_ttl_seconds INTEGER,
                                                 p_user_id INTEGER DEFAULT NULL, p_tenant_id UUID DEFAULT NULL)
RETURNS VOID LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
BEGIN
    IF p_key IS NULL OR length(p_key) = 0 OR length(p_key) > 255 THEN
        RAISE EXCEPTION 'cache key must be 1 to 255 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_value IS NULL THEN
        RAISE EXCEPTION 'cache value must not be NULL' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_ttl_seconds IS NULL OR p_ttl_seconds < 1 OR p_ttl_seconds > 31 * 86400 THEN
        RAISE EXCEPTION 'TTL must be between 1 second and 31 days, got %', coalesce(p_ttl_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO permission_cache (cache_key, cache_value, user_id, tenant_id, expires_at, created_at)
    VALUES (p_key, p_value, p_user_id, p_tenant_id,
            (now() AT TIME ZONE 'UTC') + make_interval(secs => p_ttl_seconds), now() AT TIME ZONE 'UTC')
    ON CONFLICT (cache_key) DO UPDATE
        SET cache_value = EXCLUDED.cache_value, user_id = EXCLUDED.user_id, tenant_id = EXCLUDED.tenant_id,
            expires_at = EXCLUDED.expires_at, created_at = EXCLUDED.created_at;
END $$;

-- Spec §5: `SELECT cleanup_expired_permission_cache();` Deletes expired
-- entries and returns how many.
CREATE OR REPLACE FUNCTION cleanup_expired_permission_cache()
RETURNS INTEGER LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT
AS $$
DECLARE
    n INTEGER;
BEGIN
    DELETE FROM permission_cache WHERE expires_at <= (now() AT TIME ZONE 'UTC');
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
