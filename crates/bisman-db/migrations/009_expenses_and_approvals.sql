-- Expenses and their approval workflow.
CREATE TABLE IF NOT EXISTS expenses (
    id            SERIAL PRIMARY KEY,
    tenant_id     UUID NOT NULL REFERENCES tenants(id),
    submitted_by  INTEGER NOT NULL REFERENCES users(id),
    amount        NUMERIC(14, 2) NOT NULL CHECK (amount >= 0),
    currency      TEXT NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    description   TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL DEFAULT 'PENDING'
                  CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS approvals (
    id           SERIAL PRIMARY KEY,
    tenant_id    UUID NOT NULL REFERENCES tenants(id),
    expense_id   INTEGER NOT NULL REFERENCES expenses(id),
    approver_id  INTEGER NOT NULL REFERENCES users(id),
    level        INTEGER NOT NULL DEFAULT 1 CHECK (level BETWEEN 1 AND 10),
    status       TEXT NOT NULL DEFAULT 'PENDING'
                 CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    comment      TEXT,
    decided_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
