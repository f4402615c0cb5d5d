//! Applying migrations to a database.

use std::time::Instant;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Acquire, PgPool, Postgres, Row};

use super::{statements, MigrateError, Migration, Step, MIGRATIONS};

/// Advisory lock key held while migrating, so two migrators never interleave.
const MIGRATION_LOCK: i64 = 0x6269_736d_616e_6d67; // "bismanmg"

/// A migration recorded in the database's ledger.
#[derive(Debug, Clone)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i32,
    /// Its recorded name.
    pub name: String,
    /// Checksum of the SQL it was applied from.
    pub checksum: String,
    /// When it finished.
    pub applied_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: i64,
}

/// Where one migration stands in a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationState {
    /// Applied from the same SQL this binary carries.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied from different SQL.
    Modified,
    /// Recorded in the database but unknown to this binary.
    Unknown,
}

/// One line of `bisman migrate status`.
#[derive(Debug, Clone)]
pub struct MigrationStatus {
    /// Its version.
    pub version: i32,
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: MigrationState,
    /// When it was applied, if it was.
    pub applied_at: Option<DateTime<Utc>>,
}

/// What the migrator reports while it works.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A migration starts.
    Started { version: i32, name: &'static str },
    /// A statement of a concurrent step starts (index builds can take long).
    Statement { version: i32, statement: String },
    /// An index left invalid by an interrupted run is rebuilt.
    RebuildingInvalidIndex { index: String },
    /// A migration was applied.
    Applied {
        version: i32,
        name: &'static str,
        millis: u128,
    },
}

/// Applies the migrations embedded in this binary.
#[derive(Debug, Clone, Copy)]
pub struct Migrator {
    migrations: &'static [Migration],
}

impl Default for Migrator {
    fn default() -> Self {
        Self::embedded()
    }
}

impl Migrator {
    /// The migrations embedded in this binary.
    pub fn embedded() -> Self {
        Self {
            migrations: MIGRATIONS,
        }
    }

    /// The newest version this binary knows.
    pub fn latest_version(&self) -> i32 {
        self.migrations.last().map_or(0, |m| m.version)
    }

    /// The migrations, oldest first.
    pub fn migrations(&self) -> &'static [Migration] {
        self.migrations
    }

    /// Every migration known here or recorded in the database, with its state.
    #[tracing::instrument(skip_all)]
    pub async fn status(&self, pool: &PgPool) -> Result<Vec<MigrationStatus>, MigrateError> {
        let mut conn = pool.acquire().await?;
        ensure_ledger(&mut conn).await?;
        let applied = applied(&mut conn).await?;
        let mut out: Vec<MigrationStatus> = self
            .migrations
            .iter()
            .map(|m| {
                let rec = applied.iter().find(|a| a.version == m.version);
                MigrationStatus {
                    version: m.version,
                    name: m.name.to_string(),
                    state: match rec {
                        None => MigrationState::Pending,
                        Some(a) if a.checksum == m.checksum() => MigrationState::Applied,
                        Some(_) => MigrationState::Modified,
                    },
                    applied_at: rec.map(|a| a.applied_at),
                }
            })
            .collect();
        for a in &applied {
            if !self.migrations.iter().any(|m| m.version == a.version) {
                out.push(MigrationStatus {
                    version: a.version,
                    name: a.name.clone(),
                    state: MigrationState::Unknown,
                    applied_at: Some(a.applied_at),
                });
            }
        }
        out.sort_by_key(|s| s.version);
        Ok(out)
    }

    /// Applies every pending migration up to `target` (all when `None`) and
    /// returns the versions applied. Safe to run twice and from several
    /// processes at once (they take turns on an advisory lock).
    #[tracing::instrument(skip_all, fields(target))]
    pub async fn run(
        &self,
        pool: &PgPool,
        target: Option<i32>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Vec<i32>, MigrateError> {
        if let Some(t) = target {
            if !self.migrations.iter().any(|m| m.version == t) {
                return Err(MigrateError::UnknownTarget(t));
            }
        }
        let mut conn = pool.acquire().await?;
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut *conn)
            .await?;
        wait_for_lock(&mut conn).await?;
        let result = self.run_locked(&mut conn, target, progress).await;
        // Unlock even on failure; if this fails the lock dies with the connection.
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        if unlocked.is_err() {
            conn.close_on_drop();
        }
        result
    }

    async fn run_locked(
        &self,
        conn: &mut PoolConnection<Postgres>,
        target: Option<i32>,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Vec<i32>, MigrateError> {
        ensure_ledger(conn).await?;
        let applied = applied(conn).await?;
        self.check_applied(&applied)?;
        let mut done = Vec::new();
        for m in self.migrations {
            if target.is_some_and(|t| m.version > t) {
                break;
            }
            if applied.iter().any(|a| a.version == m.version) {
                continue;
            }
            progress(Progress::Started {
                version: m.version,
                name: m.name,
            });
            let started = Instant::now();
            apply(conn, m, started, progress).await?;
            progress(Progress::Applied {
                version: m.version,
                name: m.name,
                millis: started.elapsed().as_millis(),
            });
            done.push(m.version);
        }
        Ok(done)
    }

    fn check_applied(&self, applied: &[AppliedMigration]) -> Result<(), MigrateError> {
        for a in applied {
            match self.migrations.iter().find(|m| m.version == a.version) {
                None => {
                    return Err(MigrateError::UnknownMigration {
                        version: a.version,
                        name: a.name.clone(),
                        known: self.latest_version(),
                    })
                }
                Some(m) if m.checksum() != a.checksum => {
                    return Err(MigrateError::ChecksumMismatch {
                        version: a.version,
                        name: a.name.clone(),
                        recorded: a.checksum.clone(),
                        expected: m.checksum(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Takes the migration lock, polling rather than blocking: a session blocked
/// in `pg_advisory_lock` is a transaction in progress, which another
/// migrator's `CREATE INDEX CONCURRENTLY` would wait for: a deadlock.
async fn wait_for_lock(conn: &mut PoolConnection<Postgres>) -> Result<(), sqlx::Error> {
    let mut waited = false;
    loop {
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .fetch_one(&mut **conn)
            .await?;
        if got {
            return Ok(());
        }
        if !waited {
            tracing::info!("another process is migrating this database; waiting for it");
            waited = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

async fn ensure_ledger(conn: &mut PoolConnection<Postgres>) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS bisman_schema_migrations (
             version      INTEGER PRIMARY KEY,
             name         TEXT NOT NULL,
             checksum     TEXT NOT NULL,
             applied_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
             duration_ms  BIGINT NOT NULL
         )",
    )
    .execute(&mut **conn)
    .await?;
    Ok(())
}

async fn applied(
    conn: &mut PoolConnection<Postgres>,
) -> Result<Vec<AppliedMigration>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT version, name, checksum, applied_at, duration_ms FROM bisman_schema_migrations ORDER BY version",
    )
    .fetch_all(&mut **conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(AppliedMigration {
                version: r.try_get("version")?,
                name: r.try_get("name")?,
                checksum: r.try_get("checksum")?,
                applied_at: r.try_get("applied_at")?,
                duration_ms: r.try_get("duration_ms")?,
            })
        })
        .collect()
}

async fn apply(
    conn: &mut PoolConnection<Postgres>,
    m: &'static Migration,
    started: Instant,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), MigrateError> {
    let step_err = |file: &'static str| {
        move |source| MigrateError::Step {
            version: m.version,
            name: m.name,
            file,
            source,
        }
    };

    for step in m.steps {
        if let Step::Concurrent { file, sql } = step {
            let stmts = statements::split(sql)
                .map_err(|reason| MigrateError::Malformed { file, reason })?;
            for stmt in stmts {
                if let Some(index) = statements::concurrent_index_name(&stmt) {
                    drop_if_invalid(conn, index, progress)
                        .await
                        .map_err(step_err(file))?;
                }
                progress(Progress::Statement {
                    version: m.version,
                    statement: stmt.clone(),
                });
                sqlx::raw_sql(&stmt)
                    .execute(&mut **conn)
                    .await
                    .map_err(step_err(file))?;
            }
        }
    }

    let mut tx = conn.begin().await?;
    // Never queue behind a long transaction while holding locks others need.
    sqlx::query("SET LOCAL lock_timeout = '30s'")
        .execute(&mut *tx)
        .await?;
    for step in m.steps {
        if let Step::Transactional { file, sql } = step {
            sqlx::raw_sql(sql)
                .execute(&mut *tx)
                .await
                .map_err(step_err(file))?;
        }
    }
    sqlx::query("INSERT INTO bisman_schema_migrations (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)")
        .bind(m.version)
        .bind(m.name)
        .bind(m.checksum())
        .bind(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Drops `index` when an interrupted concurrent build left it invalid, so
/// that `IF NOT EXISTS` does not keep a useless index forever.
async fn drop_if_invalid(
    conn: &mut PoolConnection<Postgres>,
    index: &str,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), sqlx::Error> {
    let invalid: Option<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname)
         FROM pg_class c
         JOIN pg_index i ON i.indexrelid = c.oid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relname = $1 AND n.nspname = current_schema() AND NOT i.indisvalid",
    )
    .bind(index)
    .fetch_optional(&mut **conn)
    .await?;
    if let Some(qualified) = invalid {
        progress(Progress::RebuildingInvalidIndex {
            index: index.to_string(),
        });
        // `qualified` was quoted by format('%I') above.
        sqlx::raw_sql(&format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified}"))
            .execute(&mut **conn)
            .await?;
    }
    Ok(())
}
