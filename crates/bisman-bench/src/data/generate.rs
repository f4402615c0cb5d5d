//! Set-based generation inside PostgreSQL (`generate_series`, no rows
//! cross the wire), deterministic for a seed.
//!
//! - Tenants, users (the first of each tenant its super admin, then
//!   admins, managers and staff), six roles per tenant with page
//!   permissions, one or two roles per user, two sessions per user.
//! - Threads of 3–10 participants of one tenant. Messages pick their thread
//!   log-uniformly (`floor((T+1)^u) - 1`), a Zipf-like law with exponent 1:
//!   a few hot threads hold a large share, most threads are small.
//! - Messages spread evenly over 15 months, inserted in time order (as an
//!   ERP writes them), 1% soft-deleted, 10% with 1–3 reactions.
//! - Read receipts: every participant but the sender has read every
//!   message older than a week (their read position, Mattermost's
//!   `LastViewedAt`, is there) and about half of the newer ones.
//!
//! `bisman_bench_threads` keeps each thread's participants and message
//! count for the measurements to pick realistic parameters from.

use sqlx::PgPool;

use super::shape::{Shape, Timeline};
use crate::error::Result;
use crate::Progress;

/// Messages per statement (and per progress step).
const CHUNK: i64 = 50_000;

/// Filler for message bodies.
const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud \
exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in \
reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint \
occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.";

const HELPERS: &str = r#"
CREATE OR REPLACE FUNCTION bisman_bench_hash(i BIGINT, seed BIGINT, salt INTEGER)
RETURNS BIGINT LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT hashint8extended(i, seed * 131 + salt) & 2147483647 $$;

CREATE OR REPLACE FUNCTION bisman_bench_unit(i BIGINT, seed BIGINT, salt INTEGER)
RETURNS FLOAT8 LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (bisman_bench_hash(i, seed, salt)::float8 + 0.5) / 2147483648.0 $$;

CREATE OR REPLACE FUNCTION bisman_bench_iso(t TIMESTAMP)
RETURNS TEXT LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') $$;

CREATE OR REPLACE FUNCTION bisman_bench_tenant(t BIGINT)
RETURNS UUID LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT md5('bisman-bench-tenant-' || t)::uuid $$;

-- The raw session token of session number s (64 hex digits, like
-- bisman-cache's tokens); user_sessions stores only its SHA-256.
CREATE OR REPLACE FUNCTION bisman_bench_token(seed BIGINT, s BIGINT)
RETURNS TEXT LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT encode(sha256(convert_to('bisman-bench-session-' || seed || '-' || s, 'UTF8')), 'hex') $$;

CREATE TABLE IF NOT EXISTS bisman_bench_threads (
    thread_no     BIGINT PRIMARY KEY,
    thread_id     TEXT NOT NULL UNIQUE,
    tenant_id     UUID NOT NULL,
    participants  INTEGER[] NOT NULL,
    messages      BIGINT NOT NULL DEFAULT 0
);
"#;

/// The generator's SQL functions and its thread table.
pub(super) async fn helpers(pool: &PgPool) -> Result<()> {
    sqlx::raw_sql(HELPERS).execute(pool).await?;
    Ok(())
}

async fn run(pool: &PgPool, sql: &str, args: &[i64]) -> Result<()> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = q.bind(*a);
    }
    q.execute(pool).await?;
    Ok(())
}

/// Tenants, users, super admins and their modules, roles, permissions,
/// user roles and sessions.
pub(super) async fn people(pool: &PgPool, shape: &Shape) -> Result<()> {
    let (t, u, seed) = (shape.tenants, shape.users, shape.seed as i64);
    run(
        pool,
        "INSERT INTO tenants (id, slug, name)
         SELECT bisman_bench_tenant(t), 'bench-' || t, 'Bench tenant ' || t
         FROM generate_series(1, $1::bigint) t",
        &[t],
    )
    .await?;
    run(
        pool,
        "INSERT INTO users (id, tenant_id, email, name, password_hash, user_type, created_at)
         SELECT u, bisman_bench_tenant((u - 1) % $1 + 1), 'user' || u || '@bench.example',
                'Bench user ' || u, 'not-a-password-hash',
                CASE WHEN u <= $1 THEN 'SUPER_ADMIN' WHEN u % 10 = 0 THEN 'ADMIN'
                     WHEN u % 10 = 1 THEN 'MANAGER' ELSE 'STAFF' END,
                now() - interval '500 days'
         FROM generate_series(1, $2::bigint) u",
        &[t, u],
    )
    .await?;
    run(
        pool,
        "SELECT setval(pg_get_serial_sequence('users', 'id'), $1)",
        &[u],
    )
    .await?;
    run(
        pool,
        "INSERT INTO super_admins (id, tenant_id, user_id)
         SELECT t, bisman_bench_tenant(t), t FROM generate_series(1, $1::bigint) t",
        &[t],
    )
    .await?;
    run(
        pool,
        "SELECT setval(pg_get_serial_sequence('super_admins', 'id'), $1)",
        &[t],
    )
    .await?;
    run(
        pool,
        "UPDATE users SET super_admin_id = (id - 1) % $1 + 1 WHERE id > $1",
        &[t],
    )
    .await?;
    // Every other super admin has every module but reports.
    run(
        pool,
        "INSERT INTO super_admin_modules (super_admin_id, module_id)
         SELECT s.id, m.id FROM super_admins s CROSS JOIN modules m
         WHERE NOT (s.id % 2 = 0 AND m.key = 'reports')",
        &[],
    )
    .await?;
    run(
        pool,
        "INSERT INTO roles (id, tenant_id, name, description)
         SELECT (t - 1) * 6 + k, bisman_bench_tenant(t),
                (ARRAY['Clerk', 'Accountant', 'Approver', 'Manager', 'Auditor', 'Support'])[k],
                'generated by bisman bench'
         FROM generate_series(1, $1::bigint) t, generate_series(1, 6) k",
        &[t],
    )
    .await?;
    run(
        pool,
        "SELECT setval(pg_get_serial_sequence('roles', 'id'), $1 * 6)",
        &[t],
    )
    .await?;
    run(
        pool,
        "INSERT INTO role_permissions (role_id, page_id, actions)
         SELECT r.id, p.id,
                CASE (r.id + p.id) % 4 WHEN 0 THEN ARRAY['view'] WHEN 1 THEN ARRAY['view', 'create']
                     WHEN 2 THEN ARRAY['view', 'create', 'edit'] ELSE ARRAY['view', 'approve'] END
         FROM roles r CROSS JOIN pages p
         WHERE (r.id * 7 + p.id) % 3 <> 0",
        &[],
    )
    .await?;
    run(
        pool,
        "INSERT INTO user_roles (user_id, role_id)
         SELECT u, ((u - 1) % $1) * 6 + 1 + (u / $1) % 6 FROM generate_series($1 + 1, $2::bigint) u
         UNION
         SELECT u, ((u - 1) % $1) * 6 + 1 + (u / $1 + 3) % 6 FROM generate_series($1 + 1, $2::bigint) u
         WHERE u % 3 = 0",
        &[t, u],
    )
    .await?;
    run(
        pool,
        "INSERT INTO user_sessions (tenant_id, user_id, user_type, token_hash, refresh_token_hash,
                                    created_at, last_seen_at, expires_at, refresh_expires_at,
                                    ip_address, user_agent)
         SELECT u.tenant_id, u.id, u.user_type,
                encode(sha256(convert_to(bisman_bench_token($1, x.s), 'UTF8')), 'hex'),
                encode(sha256(convert_to(bisman_bench_token($1 + 1, x.s), 'UTF8')), 'hex'),
                now() - interval '1 day', now(), now() + interval '30 days',
                now() + interval '30 days', '127.0.0.1', 'bisman-bench'
         FROM users u CROSS JOIN generate_series(0, $2 - 1) k
         CROSS JOIN LATERAL (SELECT (u.id - 1)::bigint * $2 + k AS s) x
         ORDER BY u.id, k",
        &[seed, shape.sessions_per_user],
    )
    .await?;
    Ok(())
}

/// Threads with their participants.
pub(super) async fn threads(pool: &PgPool, shape: &Shape, timeline: &Timeline) -> Result<()> {
    sqlx::query(
        "INSERT INTO bisman_bench_threads (thread_no, thread_id, tenant_id, participants)
         SELECT n, 'ct' || substr(md5('bisman-bench-thread-' || $4 || '-' || n), 1, 23),
                bisman_bench_tenant(n % $1 + 1),
                ARRAY(SELECT DISTINCT ((n % $1 + 1) + $1 * ((n * 7 + q * 13) % $2))::int
                      FROM generate_series(0, 2 + n % 8) q ORDER BY 1)
         FROM generate_series(0, $3 - 1) n",
    )
    .bind(shape.tenants)
    .bind(shape.users_per_tenant())
    .bind(shape.threads)
    .bind(shape.seed as i64)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO threads (id, tenant_id, title, created_by, created_at)
         SELECT thread_id, tenant_id, 'Bench thread ' || thread_no, participants[1], $1::timestamp
         FROM bisman_bench_threads ORDER BY thread_no",
    )
    .bind(timeline.start())
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO thread_participants (thread_id, user_id, joined_at)
         SELECT b.thread_id, p, $1::timestamp FROM bisman_bench_threads b, unnest(b.participants) p",
    )
    .bind(timeline.start())
    .execute(pool)
    .await?;
    Ok(())
}

const MESSAGES: &str = r#"
INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, reactions, "readBy",
                             "isDeleted", "createdAt", "updatedAt")
SELECT x.id, x.tenant_id, x.thread_id, x.sender,
       'Message ' || x.i || ': ' || substr($9, 1 + (x.h % 50)::int, 40 + (x.h / 7 % 160)::int),
       CASE WHEN x.h % 10 = 0 THEN (
           SELECT jsonb_agg(jsonb_build_object(
                      'userId', x.participants[1 + ((x.h / 11 + j) % cardinality(x.participants))::int],
                      'emoji', (ARRAY['👍', '❤️', '😂', '🎉', '👀', '✅'])[1 + ((x.h / 13 + j) % 6)::int],
                      'createdAt', bisman_bench_iso(least(x.created + make_interval(mins => (j + 1)::int), $8)))
                  ORDER BY j)
           FROM generate_series(0, x.h / 17 % 3) j)
       ELSE '[]'::jsonb END,
       coalesce((
           SELECT jsonb_agg(jsonb_build_object(
                      'userId', p,
                      'readAt', bisman_bench_iso(least(x.created + make_interval(
                          secs => (30 + bisman_bench_hash(x.i * 64 + p, $3, 5) % 7200)::float8), $8)))
                  ORDER BY p)
           FROM unnest(x.participants) p
           WHERE p <> x.sender
             AND (x.created <= $7 OR bisman_bench_hash(x.i * 64 + p, $3, 3) % 2 = 0)), '[]'::jsonb),
       x.h % 100 = 42,
       x.created, x.created
FROM (
    SELECT s.i, s.h, s.created, th.tenant_id, th.thread_id, th.participants,
           'cm' || substr(md5('bisman-bench-message-' || $3 || '-' || s.i), 1, 23) AS id,
           th.participants[1 + (s.h % cardinality(th.participants))::int] AS sender
    FROM (
        SELECT i,
               bisman_bench_hash(i, $3, 0) AS h,
               least($4 - 1, floor(exp(bisman_bench_unit(i, $3, 1) * ln(($4 + 1)::float8)))::bigint - 1)
                   AS thread_no,
               ($5::timestamp + make_interval(secs => ((i - 1) + bisman_bench_unit(i, $3, 2)) * $6))::timestamp(3)
                   AS created
        FROM generate_series($1::bigint, $2::bigint) i
    ) s
    JOIN bisman_bench_threads th ON th.thread_no = s.thread_no
) x
ORDER BY x.i
"#;

/// The messages, with receipts and reactions in JSONB, in chunks.
pub(super) async fn messages(
    pool: &PgPool,
    shape: &Shape,
    timeline: &Timeline,
    layout: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let total = shape.rows.get() as i64;
    let per_message = timeline.span_secs() / total as f64;
    progress.start(&format!("{layout}: messages"), Some(total as u64));
    let mut lo = 1;
    while lo <= total {
        let hi = (lo + CHUNK - 1).min(total);
        sqlx::query(MESSAGES)
            .bind(lo)
            .bind(hi)
            .bind(shape.seed as i64)
            .bind(shape.threads)
            .bind(timeline.start())
            .bind(per_message)
            .bind(timeline.recent())
            .bind(timeline.end)
            .bind(LOREM)
            .execute(pool)
            .await?;
        progress.advance((hi - lo + 1) as u64);
        lo = hi + 1;
    }
    progress.finish();
    Ok(())
}

/// Message counts per thread, and each thread's last message time.
pub(super) async fn counts(pool: &PgPool) -> Result<()> {
    sqlx::raw_sql(
        r#"UPDATE bisman_bench_threads b SET messages = c.n
           FROM (SELECT "threadId" AS thread_id, count(*) AS n FROM thread_messages GROUP BY 1) c
           WHERE c.thread_id = b.thread_id;
           UPDATE threads t SET last_message_at = c.last
           FROM (SELECT "threadId" AS thread_id, max("createdAt") AS last FROM thread_messages GROUP BY 1) c
           WHERE c.thread_id = t.id;"#,
    )
    .execute(pool)
    .await?;
    Ok(())
}
