//! The batched, resumable backfill and the mirror triggers.

use serde::Serialize;
use sqlx::{PgPool, Row};

use super::{Kind, NormalizeError};
use crate::lifecycle::{steps, LifecycleError, LockPolicy, Progress};

/// How to run.
#[derive(Debug, Clone)]
pub struct NormalizeOptions {
    /// Messages per batch.
    pub batch_size: i32,
    /// Start again from the first message instead of the checkpoint.
    pub restart: bool,
    /// Lock timeout, retries and statement limit of each batch and of the
    /// trigger's installation. A batch holds its messages' rows (FOR SHARE)
    /// until it commits: an application update of one of them waits that
    /// long, so batches are kept small.
    pub locks: LockPolicy,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            restart: false,
            locks: LockPolicy::default(),
        }
    }
}

/// What a run did (this run's numbers).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NormalizeReport {
    /// Which column.
    pub kind: Option<Kind>,
    /// The checkpoint it started after.
    pub resumed_after: Option<String>,
    /// Messages read.
    pub messages_scanned: i64,
    /// JSONB entries seen.
    pub entries_found: i64,
    /// Rows added to the table.
    pub rows_inserted: i64,
    /// Valid entries whose row was already there.
    pub already_present: i64,
    /// Malformed entries (quarantined, or already in quarantine).
    pub malformed_entries: i64,
    /// Batches.
    pub batches: i64,
}

/// Installs the trigger that mirrors JSONB writes into the table.
#[tracing::instrument(skip(pool, locks))]
pub async fn mirror(pool: &PgPool, kind: Kind, locks: LockPolicy) -> Result<(), NormalizeError> {
    // CREATE TRIGGER blocks writers while it waits: a short lock_timeout and
    // retries instead of queueing every writer behind a long transaction.
    ddl(
        pool,
        locks,
        &format!("mirroring {kind}"),
        format!(
            "CREATE OR REPLACE TRIGGER {t} AFTER INSERT OR UPDATE OF {c} ON thread_messages \
             FOR EACH ROW EXECUTE FUNCTION {t}()",
            t = kind.trigger(),
            c = kind.column()
        ),
    )
    .await
}

/// Removes the mirror trigger, once the application writes the tables itself.
#[tracing::instrument(skip(pool, locks))]
pub async fn unmirror(pool: &PgPool, kind: Kind, locks: LockPolicy) -> Result<(), NormalizeError> {
    // DROP TRIGGER takes an exclusive lock: the same care.
    ddl(
        pool,
        locks,
        &format!("unmirroring {kind}"),
        format!(
            "DROP TRIGGER IF EXISTS {} ON thread_messages",
            kind.trigger()
        ),
    )
    .await
}

async fn ddl(
    pool: &PgPool,
    locks: LockPolicy,
    what: &str,
    sql: String,
) -> Result<(), NormalizeError> {
    Ok(locks
        .retry(what, || async {
            let mut tx = locks.begin(pool).await?;
            sqlx::query(&sql).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<(), LifecycleError>(())
        })
        .await?)
}

/// Mirrors new writes, then backfills every message after the checkpoint.
#[tracing::instrument(skip(pool, opts, progress))]
pub async fn normalize(
    pool: &PgPool,
    kind: Kind,
    opts: &NormalizeOptions,
    progress: &dyn Progress,
) -> Result<NormalizeReport, NormalizeError> {
    if opts.batch_size < 1 {
        return Err(NormalizeError::Invalid(
            "batch size must be positive".into(),
        ));
    }
    // The trigger first: a write from now on is mirrored, anything older is
    // in the table the backfill reads.
    mirror(pool, kind, opts.locks).await?;
    let mut conn = pool.acquire().await?;
    steps::reach(&mut conn, steps::NORMALIZE_MIRRORED).await?;
    if opts.restart {
        sqlx::query("DELETE FROM bisman_normalize_progress WHERE kind = $1")
            .bind(kind.as_str())
            .execute(&mut *conn)
            .await?;
    }
    let mut after: Option<String> = sqlx::query_scalar(
        "INSERT INTO bisman_normalize_progress (kind) VALUES ($1)
         ON CONFLICT (kind) DO UPDATE SET finished_at = NULL, updated_at = now()
         RETURNING last_message_id",
    )
    .bind(kind.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let mut report = NormalizeReport {
        kind: Some(kind),
        resumed_after: after.clone(),
        ..Default::default()
    };
    let estimate: i64 = sqlx::query_scalar(
        "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'thread_messages'::regclass",
    )
    .fetch_one(&mut *conn)
    .await?;
    progress.start(
        &format!("normalizing {kind}"),
        (estimate > 0).then_some(estimate as u64),
    );
    drop(conn);
    loop {
        // The batch holds its messages' rows until it commits (FOR SHARE in
        // the SQL): waiting for an application's update of one of them is
        // retried on the lock timeout instead of making that update's
        // followers queue.
        let (mut tx, r) = opts
            .locks
            .retry(&format!("normalizing a batch of {kind}"), || async {
                let mut tx = opts.locks.begin(pool).await?;
                let r = sqlx::query(&format!("SELECT * FROM {}($1, $2)", kind.function()))
                    .bind(&after)
                    .bind(opts.batch_size)
                    .fetch_one(&mut *tx)
                    .await?;
                Ok::<_, LifecycleError>((tx, r))
            })
            .await?;
        let scanned: i64 = r.try_get("messages_scanned")?;
        let last: Option<String> = r.try_get("last_message_id")?;
        report.messages_scanned += scanned;
        report.entries_found += r.try_get::<i64, _>("entries_found")?;
        report.rows_inserted += r.try_get::<i64, _>("rows_inserted")?;
        report.already_present += r.try_get::<i64, _>("already_present")?;
        report.malformed_entries += r.try_get::<i64, _>("malformed_entries")?;
        sqlx::query(
            "UPDATE bisman_normalize_progress SET
                 last_message_id = coalesce($2, last_message_id),
                 messages_scanned = messages_scanned + $3,
                 rows_inserted = rows_inserted + $4,
                 malformed_entries = malformed_entries + $5,
                 batches = batches + 1, updated_at = now(),
                 finished_at = CASE WHEN $3 = 0 THEN now() END
             WHERE kind = $1",
        )
        .bind(kind.as_str())
        .bind(&last)
        .bind(scanned)
        .bind(r.try_get::<i64, _>("rows_inserted")?)
        .bind(r.try_get::<i64, _>("malformed_entries")?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if scanned == 0 {
            break;
        }
        report.batches += 1;
        progress.advance(scanned as u64);
        after = last;
    }
    progress.finish();
    Ok(report)
}
