//! The parameters the measurements rotate through, picked from the data
//! like real traffic: threads in proportion to their messages (busy threads
//! are read more), a participant of each as the user, a random week of the
//! data for date ranges; unread (message, user) pairs of the last week for
//! marks as read; random sessions; random staff users and pages.
//!
//! Picked once from the "after" data set; both layouts hold the same rows.

use bisman_cache::{SessionToken, UserType};
use chrono::{Duration, NaiveDateTime};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::PgPool;

use crate::data::Dataset;
use crate::error::{BenchError, Result};
use crate::options::Effort;

/// A thread, a participant, and a week.
#[derive(Debug, Clone)]
pub struct Pair {
    /// `threads.id`.
    pub thread_id: String,
    /// A participant.
    pub user_id: i32,
    /// Start of the week.
    pub from: NaiveDateTime,
    /// End of the week (exclusive).
    pub to: NaiveDateTime,
}

/// A message not yet read by a participant.
#[derive(Debug, Clone)]
pub struct Unread {
    /// The message.
    pub message_id: String,
    /// Its `"createdAt"`.
    pub created_at: NaiveDateTime,
    /// Its tenant.
    pub tenant_id: uuid::Uuid,
    /// Its thread.
    pub thread_id: String,
    /// The participant.
    pub user_id: i32,
}

/// A session to look up.
#[derive(Clone)]
pub struct SessionKey {
    /// Its raw token.
    pub token: SessionToken,
    /// `user_sessions.id`.
    pub session_id: i64,
}

/// A permission to check.
#[derive(Debug, Clone)]
pub struct Check {
    /// The user.
    pub user_id: i32,
    /// Their type.
    pub user_type: UserType,
    /// Module key.
    pub module: String,
    /// Page key.
    pub page: String,
}

/// Everything the measurements rotate through.
pub struct Workload {
    /// Thread/user/week triples.
    pub pairs: Vec<Pair>,
    /// Unread messages to mark as read (warm-up ones first).
    pub unread: Vec<Unread>,
    /// Sessions.
    pub sessions: Vec<SessionKey>,
    /// Permission checks.
    pub checks: Vec<Check>,
}

impl Workload {
    /// Picks the workload from `after`.
    pub async fn pick(after: &Dataset, effort: &Effort, seed: u64) -> Result<Workload> {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x0062_656e_6368);
        let pool = &after.pool;
        let timeline = after.meta.timeline();
        let pairs = pairs(pool, &mut rng, effort.pairs, timeline.start(), timeline.end).await?;
        let unread = unread(
            pool,
            timeline.recent(),
            effort.query_samples + effort.warmup,
        )
        .await?;
        let sessions = sessions(
            pool,
            &mut rng,
            effort.keys,
            after.meta.seed,
            after.meta.sessions,
        )
        .await?;
        let checks = checks(pool, &mut rng, effort.keys, after.meta.tenants).await?;
        if pairs.is_empty() || sessions.is_empty() || checks.is_empty() {
            return Err(BenchError::Setup(
                "the data set has no threads, sessions or users to measure".into(),
            ));
        }
        Ok(Workload {
            pairs,
            unread,
            sessions,
            checks,
        })
    }
}

async fn pairs(
    pool: &PgPool,
    rng: &mut StdRng,
    n: usize,
    start: NaiveDateTime,
    end: NaiveDateTime,
) -> Result<Vec<Pair>> {
    let threads: Vec<(String, Vec<i32>, i64)> = sqlx::query_as(
        "SELECT thread_id, participants, messages FROM bisman_bench_threads
         WHERE messages > 0 ORDER BY thread_no",
    )
    .fetch_all(pool)
    .await?;
    let mut cumulative = Vec::with_capacity(threads.len());
    let mut total = 0i64;
    for t in &threads {
        total += t.2;
        cumulative.push(total);
    }
    if total == 0 {
        return Ok(Vec::new());
    }
    let week = Duration::days(7);
    let room = ((end - start) - week).num_seconds().max(1);
    Ok((0..n)
        .map(|_| {
            let pick = rng.random_range(0..total);
            let k = cumulative.partition_point(|&c| c <= pick);
            let (thread_id, participants, _) = &threads[k];
            let from = start + Duration::seconds(rng.random_range(0..room));
            Pair {
                thread_id: thread_id.clone(),
                user_id: participants[rng.random_range(0..participants.len())],
                from,
                to: from + week,
            }
        })
        .collect())
}

async fn unread(pool: &PgPool, recent: NaiveDateTime, n: usize) -> Result<Vec<Unread>> {
    let rows: Vec<(String, NaiveDateTime, uuid::Uuid, String, i32)> = sqlx::query_as(
        r#"SELECT m.id, m."createdAt", m.tenant_id, m."threadId", p
           FROM thread_messages_partitioned m
           JOIN bisman_bench_threads b ON b.thread_id = m."threadId"
           CROSS JOIN LATERAL unnest(b.participants) p
           WHERE m."createdAt" > $1 AND p <> m."senderId"
             AND NOT m."readBy" @> jsonb_build_array(jsonb_build_object('userId', p))
             AND NOT EXISTS (SELECT 1 FROM message_reads r
                             WHERE r.message_id = m.id AND r.user_id = p
                               AND r.message_created_at = m."createdAt" AND r.tenant_id = m.tenant_id)
           ORDER BY md5(m.id || ':' || p)
           LIMIT $2"#,
    )
    .bind(recent)
    .bind(n as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(message_id, created_at, tenant_id, thread_id, user_id)| Unread {
                message_id,
                created_at,
                tenant_id,
                thread_id,
                user_id,
            },
        )
        .collect())
}

async fn sessions(
    pool: &PgPool,
    rng: &mut StdRng,
    n: usize,
    seed: i64,
    total: i64,
) -> Result<Vec<SessionKey>> {
    let numbers: Vec<i64> = (0..n).map(|_| rng.random_range(0..total.max(1))).collect();
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT bisman_bench_token($2, s), us.id
         FROM unnest($1::bigint[]) WITH ORDINALITY AS x(s, k)
         JOIN user_sessions us
           ON us.token_hash = encode(sha256(convert_to(bisman_bench_token($2, x.s), 'UTF8')), 'hex')
         ORDER BY x.k",
    )
    .bind(&numbers)
    .bind(seed)
    .fetch_all(pool)
    .await?;
    // Live sessions, whenever the data set was built.
    let ids: Vec<i64> = rows.iter().map(|r| r.1).collect();
    sqlx::query(
        "UPDATE user_sessions SET last_seen_at = now(), is_active = true, revoked_at = NULL,
                expires_at = greatest(expires_at, now() + interval '1 day')
         WHERE id = ANY($1)",
    )
    .bind(&ids)
    .execute(pool)
    .await?;
    rows.into_iter()
        .map(|(token, session_id)| {
            SessionToken::parse(&token)
                .map(|token| SessionKey { token, session_id })
                .ok_or_else(|| BenchError::Setup("generated session token is malformed".into()))
        })
        .collect()
}

async fn checks(pool: &PgPool, rng: &mut StdRng, n: usize, tenants: i64) -> Result<Vec<Check>> {
    let users: Vec<(i32, String)> =
        sqlx::query_as("SELECT id, user_type FROM users WHERE id > $1 AND is_active ORDER BY id")
            .bind(tenants)
            .fetch_all(pool)
            .await?;
    let pages: Vec<(String, String)> = sqlx::query_as(
        "SELECT m.key, p.key FROM pages p JOIN modules m ON m.id = p.module_id ORDER BY m.key, p.key",
    )
    .fetch_all(pool)
    .await?;
    if users.is_empty() || pages.is_empty() {
        return Ok(Vec::new());
    }
    (0..n)
        .map(|_| {
            let (user_id, kind) = &users[rng.random_range(0..users.len())];
            let (module, page) = &pages[rng.random_range(0..pages.len())];
            let user_type = kind
                .parse()
                .map_err(|e| BenchError::Setup(format!("user {user_id}: {e}")))?;
            Ok(Check {
                user_id: *user_id,
                user_type,
                module: module.clone(),
                page: page.clone(),
            })
        })
        .collect()
}
