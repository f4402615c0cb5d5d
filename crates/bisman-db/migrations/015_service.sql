-- 015: what `bisman serve` keeps beside the ERP's tables.
--
-- 1. thread_read_positions: a read position per (user, thread), Mattermost's
--    LastViewedAt. "Mark read up to here" moves it forward (never back) in one
--    row write, and unread counts only look at messages after it, so they
--    need no per-message rows. Per-message receipts stay in message_reads.
-- 2. platform_operators: accounts allowed to assign modules to super admins
--    and to deactivate them. A super admin's modules bound every user under
--    them, so no account bounded by a super admin (the super admin included)
--    may widen that super admin's modules: operators are outside the module
--    system and are granted here, by SQL, never through the API.
-- 3. bisman_job_state / bisman_job_runs: the maintenance scheduler's due
--    times and its log (one row per run, whichever instance ran it).

CREATE TABLE IF NOT EXISTS thread_read_positions (
    tenant_id             UUID NOT NULL REFERENCES tenants(id),
    user_id               INTEGER NOT NULL REFERENCES users(id),
    thread_id             TEXT NOT NULL REFERENCES threads(id),
    -- Everything created at or before this (naive UTC, as "createdAt") is read.
    last_read_at          TIMESTAMP(3) NOT NULL,
    last_read_message_id  TEXT,
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, thread_id)
);
CREATE INDEX IF NOT EXISTS thread_read_positions_thread_idx ON thread_read_positions (thread_id, last_read_at);

CREATE TABLE IF NOT EXISTS platform_operators (
    user_id     INTEGER PRIMARY KEY REFERENCES users(id),
    tenant_id   UUID NOT NULL REFERENCES tenants(id),
    granted_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bisman_job_state (
    job              TEXT PRIMARY KEY CHECK (job ~ '^[a-z][a-z0-9_]{0,62}$'),
    last_started_at  TIMESTAMPTZ,
    last_finished_at TIMESTAMPTZ,
    last_outcome     TEXT CHECK (last_outcome IN ('ok', 'failed', 'running')),
    last_duration_ms BIGINT,
    last_detail      TEXT,
    last_instance    TEXT
);

CREATE TABLE IF NOT EXISTS bisman_job_runs (
    id           BIGSERIAL PRIMARY KEY,
    job          TEXT NOT NULL,
    instance     TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    duration_ms  BIGINT,
    outcome      TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'running')),
    detail       TEXT
);
CREATE INDEX IF NOT EXISTS bisman_job_runs_job_started_idx ON bisman_job_runs (job, started_at DESC);
