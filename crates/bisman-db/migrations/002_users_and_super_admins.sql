-- Users and super admins.
--
-- A super admin is a user (user_type = 'SUPER_ADMIN') with a row in
-- super_admins. Modules are assigned to super admins; the users a super admin
-- manages (users.super_admin_id) can only ever reach modules assigned to that
-- super admin, and lose them all when the super admin is deactivated.
CREATE TABLE IF NOT EXISTS users (
    id                   SERIAL PRIMARY KEY,
    tenant_id            UUID NOT NULL REFERENCES tenants(id),
    email                TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
    name                 TEXT NOT NULL DEFAULT '',
    password_hash        TEXT NOT NULL,
    user_type            TEXT NOT NULL DEFAULT 'STAFF'
                         CHECK (user_type IN ('SUPER_ADMIN', 'ADMIN', 'MANAGER', 'STAFF')),
    super_admin_id       INTEGER,
    is_active            BOOLEAN NOT NULL DEFAULT true,
    password_changed_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS users_tenant_email_key ON users (tenant_id, lower(email));
CREATE INDEX IF NOT EXISTS users_super_admin_idx ON users (super_admin_id);

CREATE TABLE IF NOT EXISTS super_admins (
    id              SERIAL PRIMARY KEY,
    tenant_id       UUID NOT NULL REFERENCES tenants(id),
    user_id         INTEGER NOT NULL UNIQUE REFERENCES users(id),
    is_active       BOOLEAN NOT NULL DEFAULT true,
    deactivated_at  TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS super_admins_tenant_idx ON super_admins (tenant_id);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'users_super_admin_id_fkey') THEN
        ALTER TABLE users ADD CONSTRAINT users_super_admin_id_fkey
            FOREIGN KEY (super_admin_id) REFERENCES super_admins(id);
    END IF;
END $$;
