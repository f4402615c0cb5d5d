-- The ERP's module catalogue: modules (payments, expenses, ...) made of pages.
CREATE TABLE IF NOT EXISTS modules (
    id          SERIAL PRIMARY KEY,
    key         TEXT NOT NULL UNIQUE CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS pages (
    id          SERIAL PRIMARY KEY,
    module_id   INTEGER NOT NULL REFERENCES modules(id),
    key         TEXT NOT NULL CHECK (key ~ '^[a-z][a-z0-9_]{0,62}$'),
    name        TEXT NOT NULL,
    UNIQUE (module_id, key)
);

-- Modules a super admin may use (and hand on to the users under them).
CREATE TABLE IF NOT EXISTS super_admin_modules (
    super_admin_id  INTEGER NOT NULL REFERENCES super_admins(id),
    module_id       INTEGER NOT NULL REFERENCES modules(id),
    assigned_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (super_admin_id, module_id)
);
