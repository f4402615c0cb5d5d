-- Roles (per tenant), the pages each role may use with which actions, and
-- which users hold which roles.
CREATE TABLE IF NOT EXISTS roles (
    id           SERIAL PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    description  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE IF NOT EXISTS role_permissions (
    role_id     INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    page_id     INTEGER NOT NULL REFERENCES pages(id),
    actions     TEXT[] NOT NULL DEFAULT ARRAY['view']::TEXT[]
                CHECK (actions <@ ARRAY['view', 'create', 'edit', 'delete', 'approve']::TEXT[]),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (role_id, page_id)
);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id      INTEGER NOT NULL REFERENCES users(id),
    role_id      INTEGER NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    assigned_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX IF NOT EXISTS user_roles_role_idx ON user_roles (role_id);
