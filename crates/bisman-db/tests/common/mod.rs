//! Shared fixtures for the database tests.
#![allow(dead_code)]

pub mod interleave;

use sqlx::PgPool;
use uuid::Uuid;

/// The tenant every fixture row belongs to.
pub const TENANT: Uuid = Uuid::from_u128(0x0000_0000_0000_0000_0000_0000_0000_0001);

/// A tenant, a user (id returned), and a thread `th1`.
pub async fn seed_base(pool: &PgPool) -> i32 {
    sqlx::query("INSERT INTO tenants (id, slug, name) VALUES ($1, 'fixture', 'Fixture')")
        .bind(TENANT)
        .execute(pool)
        .await
        .unwrap();
    let user: i32 = sqlx::query_scalar(
        "INSERT INTO users (tenant_id, email, password_hash) VALUES ($1, 'u@fixture.test', 'x') RETURNING id",
    )
    .bind(TENANT)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO threads (id, tenant_id, title, created_by) VALUES ('th1', $1, 'Thread one', $2)")
        .bind(TENANT)
        .bind(user)
        .execute(pool)
        .await
        .unwrap();
    user
}

/// Inserts a message into `table` (the flat `thread_messages` or the
/// partitioned twin) with the given JSONB columns and timestamp.
pub async fn message(
    pool: &PgPool,
    table: &str,
    id: &str,
    created_at: &str,
    read_by: &str,
    reactions: &str,
) {
    let sql = format!(
        r#"INSERT INTO {table} (id, tenant_id, "threadId", "senderId", content, "readBy", reactions, "createdAt")
           VALUES ($1, $2, 'th1', 1, 'hello', $3::jsonb, $4::jsonb, $5::timestamp)"#
    );
    sqlx::query(&sql)
        .bind(id)
        .bind(TENANT)
        .bind(read_by)
        .bind(reactions)
        .bind(created_at)
        .execute(pool)
        .await
        .unwrap();
}

/// `count(*)` of a table.
pub async fn count(pool: &PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Names of the partitions attached to `parent`, in order.
pub async fn partitions(pool: &PgPool, parent: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = to_regclass($1) ORDER BY 1",
    )
    .bind(parent)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Whether a relation exists.
pub async fn exists(pool: &PgPool, relation: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(relation)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A folder of its own under the system's temporary directory.
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bisman-{tag}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
