//! Keeping the other table in step with the live one: replaying the change
//! log, and comparing both tables.
//!
//! A replayed key is deleted from the other table and copied again from the
//! live one, which is right for inserts, updates and deletes alike and
//! idempotent. Replayed keys are remembered as dirty until a full comparison
//! on one snapshot covers them; the swap compares exactly the dirty keys
//! under its lock, so it never has to checksum the whole table while writers
//! wait.

use sqlx::{Acquire, PgConnection, PgPool};

use super::shape::Shape;
use crate::lifecycle::ident::{quote, quote_list};
use crate::lifecycle::{LifecycleError, LockPolicy, Progress};

/// The table that follows the live one: the twin before the swap, the
/// retired flat table after it.
pub(super) fn target(shape: &Shape) -> &str {
    match shape.state.as_deref() {
        Some("swapped") | Some("finished") => &shape.retired,
        _ => &shape.twin,
    }
}

/// Replays logged changes until fewer than a batch are left; returns how
/// many log entries were replayed.
pub(super) async fn catch_up(
    pool: &PgPool,
    shape: &Shape,
    batch: i64,
    locks: LockPolicy,
    progress: &dyn Progress,
) -> Result<i64, LifecycleError> {
    let mut conn = pool.acquire().await?;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM bisman_table_changes WHERE base_table = $1")
            .bind(&shape.base)
            .fetch_one(&mut *conn)
            .await?;
    progress.start(&format!("catching up {}", shape.base), Some(pending as u64));
    let mut total = 0;
    loop {
        let mut tx = conn.begin().await?;
        locks.apply(&mut tx).await?;
        let n = replay(&mut tx, shape, batch).await?;
        tx.commit().await?;
        total += n;
        progress.advance(n as u64);
        if n < batch {
            break;
        }
    }
    progress.finish();
    Ok(total)
}

/// Replays up to `limit` log entries in the caller's transaction.
pub(super) async fn replay(
    conn: &mut PgConnection,
    shape: &Shape,
    limit: i64,
) -> Result<i64, LifecycleError> {
    let keys: Vec<String> = sqlx::query_scalar(
        "DELETE FROM bisman_table_changes WHERE id IN (
             SELECT id FROM bisman_table_changes WHERE base_table = $1 ORDER BY id LIMIT $2)
         RETURNING key",
    )
    .bind(&shape.base)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let taken = keys.len() as i64;
    if keys.is_empty() {
        return Ok(0);
    }
    let mut keys = keys;
    keys.sort();
    keys.dedup();
    let key = quote(&shape.key);
    let any = format!("{key} = ANY($1::text[]::{}[])", shape.key_type);
    let cols = quote_list(&shape.columns);
    sqlx::query(&format!("DELETE FROM {} WHERE {any}", quote(target(shape))))
        .bind(&keys)
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE {any}",
        quote(target(shape)),
        quote(&shape.base)
    ))
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO bisman_table_dirty_keys (base_table, key, marked)
         SELECT $1, k, nextval('bisman_table_dirty_keys_marked_seq') FROM unnest($2::text[]) k
         ON CONFLICT (base_table, key) DO UPDATE SET marked = EXCLUDED.marked",
    )
    .bind(&shape.base)
    .bind(&keys)
    .execute(&mut *conn)
    .await?;
    Ok(taken)
}

/// Count and checksum of `table`'s rows selected by `filter` (over the live
/// table's columns, so both sides hash the same text).
async fn digest(
    conn: &mut PgConnection,
    shape: &Shape,
    table: &str,
    filter: &str,
) -> Result<(i64, String), LifecycleError> {
    let row = shape
        .columns
        .iter()
        .map(|c| format!("t.{}", quote(c)))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(sqlx::query_as(&format!(
        "SELECT count(*), coalesce(sum(hashtextextended(ROW({row})::text, 0)::numeric), 0)::text
         FROM {} t WHERE {filter}",
        quote(table)
    ))
    .bind(&shape.base)
    .fetch_one(conn)
    .await?)
}

/// Compares both tables on one snapshot, leaving out keys whose changes are
/// not replayed yet, then forgets the dirty keys that comparison covered.
/// Returns the rows compared.
pub(super) async fn verify_snapshot(
    pool: &PgPool,
    shape: &Shape,
    locks: LockPolicy,
) -> Result<i64, LifecycleError> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await?;
    // Reading both tables whole: the maintenance statement limit, and no
    // lock it waits for blocks the application.
    locks.apply(&mut tx).await?;
    sqlx::query("SET LOCAL lock_timeout = 0")
        .execute(&mut *tx)
        .await?;
    let filter = format!(
        "NOT EXISTS (SELECT 1 FROM bisman_table_changes c WHERE c.base_table = $1 AND c.key = t.{}::text)",
        quote(&shape.key)
    );
    let live = digest(&mut tx, shape, &shape.base, &filter).await?;
    let other = digest(&mut tx, shape, target(shape), &filter).await?;
    if live != other {
        return Err(mismatch(shape, "full comparison", live, other));
    }
    sqlx::query("DELETE FROM bisman_table_dirty_keys WHERE base_table = $1")
        .bind(&shape.base)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE bisman_table_migrations SET verified_at = now() WHERE base_table = $1")
        .bind(&shape.base)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(live.0)
}

/// Under the swap's lock: replays the rest, then compares the row counts of
/// both tables and the checksum of every key replayed since the last full
/// comparison. Returns (rows, log entries replayed).
pub(super) async fn verify_locked(
    conn: &mut PgConnection,
    shape: &Shape,
) -> Result<(i64, i64), LifecycleError> {
    let mut replayed = 0;
    loop {
        let n = replay(conn, shape, 50_000).await?;
        replayed += n;
        if n == 0 {
            break;
        }
    }
    let dirty = format!(
        "t.{}::text IN (SELECT key FROM bisman_table_dirty_keys WHERE base_table = $1)",
        quote(&shape.key)
    );
    let live = digest(conn, shape, &shape.base, &dirty).await?;
    let other = digest(conn, shape, target(shape), &dirty).await?;
    if live != other {
        return Err(mismatch(
            shape,
            "rows changed during the migration",
            live,
            other,
        ));
    }
    let count = |t: &str| format!("SELECT count(*) FROM {}", quote(t));
    let live_rows: i64 = sqlx::query_scalar(&count(&shape.base))
        .fetch_one(&mut *conn)
        .await?;
    let other_rows: i64 = sqlx::query_scalar(&count(target(shape)))
        .fetch_one(&mut *conn)
        .await?;
    if live_rows != other_rows {
        return Err(LifecycleError::Mismatch {
            table: shape.base.clone(),
            detail: format!(
                "{} has {live_rows} rows, {} has {other_rows}",
                shape.base,
                target(shape)
            ),
        });
    }
    Ok((live_rows, replayed))
}

fn mismatch(
    shape: &Shape,
    what: &str,
    live: (i64, String),
    other: (i64, String),
) -> LifecycleError {
    LifecycleError::Mismatch {
        table: shape.base.clone(),
        detail: format!(
            "{what}: {} has {} rows (checksum {}), {} has {} rows (checksum {})",
            shape.base,
            live.0,
            live.1,
            target(shape),
            other.0,
            other.1
        ),
    }
}

/// `VACUUM (ANALYZE)` of the copy before it goes live: the planner gets
/// statistics for it, and the visibility map makes the swap's count cheap.
pub(super) async fn vacuum_analyze(
    pool: &PgPool,
    table: &str,
    locks: LockPolicy,
) -> Result<(), LifecycleError> {
    let mut conn = pool.acquire().await?;
    // VACUUM cannot run in a transaction: its limits are set for the session.
    locks.apply_session(&mut conn).await?;
    sqlx::query("SET lock_timeout = 0")
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query(&format!("VACUUM (ANALYZE) {}", quote(table)))
        .execute(&mut *conn)
        .await;
    LockPolicy::reset(&mut conn).await?;
    done?;
    Ok(())
}
