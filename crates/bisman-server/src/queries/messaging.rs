//! Threads, messages, read receipts (`message_reads`, `thread_read_positions`)
//! and reactions (`message_reactions`). A thread is visible to its
//! participants in its tenant only; a message through its thread.

use bisman_cache::{TenantId, UserId};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;

/// A thread as its participants see it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Thread {
    /// Thread id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Creator.
    pub created_by: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last message.
    pub last_message_at: Option<DateTime<Utc>>,
}

/// The caller's threads, most recently active first.
#[tracing::instrument(skip(pool))]
pub async fn list_threads(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    limit: i64,
) -> Result<Vec<Thread>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id, t.title, t.created_by, t.created_at, t.last_message_at
         FROM threads t JOIN thread_participants p ON p.thread_id = t.id AND p.user_id = $2
         WHERE t.tenant_id = $1
         ORDER BY t.last_message_at DESC NULLS LAST, t.id LIMIT $3",
    )
    .bind(tenant.0)
    .bind(user.0)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Whether `user` takes part in thread `thread` of the tenant.
#[tracing::instrument(skip(pool))]
pub async fn is_participant(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    thread: &str,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM threads t JOIN thread_participants p ON p.thread_id = t.id
                        WHERE t.id = $1 AND t.tenant_id = $2 AND p.user_id = $3)",
    )
    .bind(thread)
    .bind(tenant.0)
    .bind(user.0)
    .fetch_one(pool)
    .await
}

/// How many of `users` belong to the tenant.
pub async fn count_tenant_users(
    pool: &PgPool,
    tenant: TenantId,
    users: &[i32],
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM users WHERE tenant_id = $1 AND id = ANY($2)")
        .bind(tenant.0)
        .bind(users)
        .fetch_one(pool)
        .await
}

/// Creates a thread with its participants.
#[tracing::instrument(skip(pool, title, participants))]
pub async fn create_thread(
    pool: &PgPool,
    tenant: TenantId,
    creator: UserId,
    title: &str,
    participants: &[i32],
) -> Result<Thread, sqlx::Error> {
    let id = format!("thr_{}", uuid::Uuid::new_v4().simple());
    let mut tx = pool.begin().await?;
    let thread: Thread = sqlx::query_as(
        "INSERT INTO threads (id, tenant_id, title, created_by) VALUES ($1, $2, $3, $4)
         RETURNING id, title, created_by, created_at, last_message_at",
    )
    .bind(&id)
    .bind(tenant.0)
    .bind(title)
    .bind(creator.0)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO thread_participants (thread_id, user_id)
         SELECT $1, u FROM unnest($2::int[]) u ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(participants)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(thread)
}

/// A message.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Message {
    /// Message id.
    pub id: String,
    /// Thread id.
    pub thread_id: String,
    /// Sender.
    pub sender_id: i32,
    /// Text.
    pub content: String,
    /// Created (UTC).
    #[schema(value_type = String, format = DateTime)]
    pub created_at: NaiveDateTime,
}

const MESSAGE_COLUMNS: &str =
    r#"id, "threadId" AS thread_id, "senderId" AS sender_id, content, "createdAt" AS created_at"#;

/// A page of a thread's messages, newest first, deleted ones left out,
/// strictly before `before` (`("createdAt", id)`) when given.
#[tracing::instrument(skip(pool))]
pub async fn message_page(
    pool: &PgPool,
    tenant: TenantId,
    thread: &str,
    before: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<Message>, sqlx::Error> {
    match before {
        None => {
            sqlx::query_as(&format!(
                r#"SELECT {MESSAGE_COLUMNS} FROM thread_messages
                   WHERE "threadId" = $1 AND tenant_id = $2 AND NOT "isDeleted"
                   ORDER BY "createdAt" DESC, id DESC LIMIT $3"#
            ))
            .bind(thread)
            .bind(tenant.0)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
        Some((at, id)) => {
            sqlx::query_as(&format!(
                r#"SELECT {MESSAGE_COLUMNS} FROM thread_messages
                   WHERE "threadId" = $1 AND tenant_id = $2 AND NOT "isDeleted"
                     AND "createdAt" <= $3 AND ("createdAt", id) < ($3, $4)
                   ORDER BY "createdAt" DESC, id DESC LIMIT $5"#
            ))
            .bind(thread)
            .bind(tenant.0)
            .bind(at)
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await
        }
    }
}

/// Posts a message and moves the thread's last activity.
#[tracing::instrument(skip(pool, content))]
pub async fn post_message(
    pool: &PgPool,
    tenant: TenantId,
    sender: UserId,
    thread: &str,
    content: &str,
) -> Result<Message, sqlx::Error> {
    let id = format!("msg_{}", uuid::Uuid::new_v4().simple());
    let mut tx = pool.begin().await?;
    let message: Message = sqlx::query_as(&format!(
        r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content)
           VALUES ($1, $2, $3, $4, $5) RETURNING {MESSAGE_COLUMNS}"#
    ))
    .bind(&id)
    .bind(tenant.0)
    .bind(thread)
    .bind(sender.0)
    .bind(content)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE threads SET last_message_at = now() WHERE id = $1 AND tenant_id = $2")
        .bind(thread)
        .bind(tenant.0)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(message)
}

/// What identifies a message for receipts and reactions.
#[derive(Debug, Clone)]
pub struct MessageRef {
    /// Message id.
    pub id: String,
    /// Its thread.
    pub thread_id: String,
    /// Its timestamp (the partition key of receipts and reactions).
    pub created_at: NaiveDateTime,
}

/// A live message of the tenant, in a thread `user` takes part in.
#[tracing::instrument(skip(pool))]
pub async fn find_message(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    message: &str,
) -> Result<Option<MessageRef>, sqlx::Error> {
    let row: Option<(String, String, NaiveDateTime)> = sqlx::query_as(
        r#"SELECT m.id, m."threadId", m."createdAt" FROM thread_messages m
           JOIN thread_participants p ON p.thread_id = m."threadId" AND p.user_id = $3
           WHERE m.id = $1 AND m.tenant_id = $2 AND NOT m."isDeleted""#,
    )
    .bind(message)
    .bind(tenant.0)
    .bind(user.0)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, thread_id, created_at)| MessageRef {
        id,
        thread_id,
        created_at,
    }))
}

/// The newest live message of a thread.
pub async fn latest_message(
    pool: &PgPool,
    tenant: TenantId,
    thread: &str,
) -> Result<Option<MessageRef>, sqlx::Error> {
    let row: Option<(String, String, NaiveDateTime)> = sqlx::query_as(
        r#"SELECT id, "threadId", "createdAt" FROM thread_messages
           WHERE "threadId" = $1 AND tenant_id = $2 AND NOT "isDeleted"
           ORDER BY "createdAt" DESC, id DESC LIMIT 1"#,
    )
    .bind(thread)
    .bind(tenant.0)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, thread_id, created_at)| MessageRef {
        id,
        thread_id,
        created_at,
    }))
}

/// Records that `user` read one message (idempotent).
#[tracing::instrument(skip(pool))]
pub async fn mark_read(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    m: &MessageRef,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO message_reads (message_id, user_id, tenant_id, thread_id, message_created_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (message_id, user_id, message_created_at, tenant_id) DO NOTHING",
    )
    .bind(&m.id)
    .bind(user.0)
    .bind(tenant.0)
    .bind(&m.thread_id)
    .bind(m.created_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// Moves `user`'s read position in the thread up to `m` (never back);
/// returns the position now.
#[tracing::instrument(skip(pool))]
pub async fn mark_read_up_to(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    m: &MessageRef,
) -> Result<NaiveDateTime, sqlx::Error> {
    sqlx::query(
        "INSERT INTO thread_read_positions (tenant_id, user_id, thread_id, last_read_at, last_read_message_id)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (user_id, thread_id) DO UPDATE
            SET last_read_at = EXCLUDED.last_read_at, last_read_message_id = EXCLUDED.last_read_message_id,
                updated_at = now()
            WHERE thread_read_positions.last_read_at < EXCLUDED.last_read_at",
    )
    .bind(tenant.0)
    .bind(user.0)
    .bind(&m.thread_id)
    .bind(m.created_at)
    .bind(&m.id)
    .execute(pool)
    .await?;
    sqlx::query_scalar(
        "SELECT last_read_at FROM thread_read_positions WHERE user_id = $1 AND thread_id = $2 AND tenant_id = $3",
    )
    .bind(user.0)
    .bind(&m.thread_id)
    .bind(tenant.0)
    .fetch_one(pool)
    .await
}

/// Unread messages of one thread of the caller.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Unread {
    /// Thread id.
    pub thread_id: String,
    /// Messages by others, after my read position, without a receipt of mine.
    pub unread: i64,
}

/// Unread counts for every thread of the caller (or one thread).
#[tracing::instrument(skip(pool))]
pub async fn unread_counts(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    thread: Option<&str>,
) -> Result<Vec<Unread>, sqlx::Error> {
    sqlx::query_as(
        r#"SELECT t.id AS thread_id,
                  (SELECT count(*) FROM thread_messages m
                   WHERE m."threadId" = t.id AND m.tenant_id = t.tenant_id AND NOT m."isDeleted"
                     AND m."senderId" <> $2
                     AND m."createdAt" > coalesce(rp.last_read_at, '-infinity'::timestamp)
                     AND NOT EXISTS (SELECT 1 FROM message_reads r
                                     WHERE r.user_id = $2 AND r.thread_id = m."threadId"
                                       AND r.message_id = m.id AND r.message_created_at = m."createdAt"
                                       AND r.tenant_id = m.tenant_id)) AS unread
           FROM threads t
           JOIN thread_participants p ON p.thread_id = t.id AND p.user_id = $2
           LEFT JOIN thread_read_positions rp ON rp.user_id = $2 AND rp.thread_id = t.id
           WHERE t.tenant_id = $1 AND ($3::text IS NULL OR t.id = $3)
           ORDER BY t.last_message_at DESC NULLS LAST, t.id"#,
    )
    .bind(tenant.0)
    .bind(user.0)
    .bind(thread)
    .fetch_all(pool)
    .await
}

/// Someone who read a message.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Reader {
    /// User id.
    pub user_id: i32,
    /// When (for a read position: when it last moved).
    pub read_at: DateTime<Utc>,
    /// `receipt` (this message) or `position` (read up to a later point).
    pub source: String,
}

/// Who read a message: its receipts, and readers whose position covers it.
#[tracing::instrument(skip(pool))]
pub async fn readers(
    pool: &PgPool,
    tenant: TenantId,
    m: &MessageRef,
) -> Result<Vec<Reader>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.user_id, r.read_at AT TIME ZONE 'UTC' AS read_at, 'receipt' AS source
         FROM message_reads r
         WHERE r.message_id = $1 AND r.message_created_at = $2 AND r.tenant_id = $3
         UNION ALL
         SELECT rp.user_id, rp.updated_at, 'position'
         FROM thread_read_positions rp
         WHERE rp.thread_id = $4 AND rp.tenant_id = $3 AND rp.last_read_at >= $2
           AND NOT EXISTS (SELECT 1 FROM message_reads r
                           WHERE r.message_id = $1 AND r.message_created_at = $2
                             AND r.tenant_id = $3 AND r.user_id = rp.user_id)
         ORDER BY 1",
    )
    .bind(&m.id)
    .bind(m.created_at)
    .bind(tenant.0)
    .bind(&m.thread_id)
    .fetch_all(pool)
    .await
}

/// The reactions of a message with one emoji.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ReactionGroup {
    /// The emoji.
    pub emoji: String,
    /// How many.
    pub count: i64,
    /// Who.
    pub user_ids: Vec<i32>,
}

/// Reactions of a message, grouped by emoji.
#[tracing::instrument(skip(pool))]
pub async fn reactions(
    pool: &PgPool,
    tenant: TenantId,
    m: &MessageRef,
) -> Result<Vec<ReactionGroup>, sqlx::Error> {
    sqlx::query_as(
        "SELECT emoji, count(*) AS count, array_agg(user_id ORDER BY created_at, user_id) AS user_ids
         FROM message_reactions
         WHERE message_id = $1 AND message_created_at = $2 AND tenant_id = $3
         GROUP BY emoji ORDER BY min(created_at), emoji",
    )
    .bind(&m.id)
    .bind(m.created_at)
    .bind(tenant.0)
    .fetch_all(pool)
    .await
}

/// Adds a reaction; whether it is new.
#[tracing::instrument(skip(pool))]
pub async fn add_reaction(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    m: &MessageRef,
    emoji: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO message_reactions (message_id, user_id, emoji, tenant_id, thread_id, message_created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (message_id, user_id, emoji, message_created_at, tenant_id) DO NOTHING",
    )
    .bind(&m.id)
    .bind(user.0)
    .bind(emoji)
    .bind(tenant.0)
    .bind(&m.thread_id)
    .bind(m.created_at)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Removes the caller's reaction; whether there was one.
#[tracing::instrument(skip(pool))]
pub async fn remove_reaction(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
    m: &MessageRef,
    emoji: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "DELETE FROM message_reactions
         WHERE message_id = $1 AND message_created_at = $2 AND tenant_id = $3 AND user_id = $4 AND emoji = $5",
    )
    .bind(&m.id)
    .bind(m.created_at)
    .bind(tenant.0)
    .bind(user.0)
    .bind(emoji)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}
