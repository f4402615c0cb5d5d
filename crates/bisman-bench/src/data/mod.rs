//! The data sets: one database per layout and size, generated inside
//! PostgreSQL with set-based SQL, reused while current.
//!
//! - [`Layout::Before`]: the ERP as it is before P3 (migrations up to
//!   `011`): flat `thread_messages`, read receipts and reactions in JSONB,
//!   none of the P3 indexes.
//! - [`Layout::After`]: the same data with every migration applied: the P3
//!   indexes (built on the loaded table, as on a live ERP), the flat table
//!   kept (it is what "JSONB with GIN" and "flat with the P3 index" are
//!   measured on), the same messages in `thread_messages_partitioned`
//!   (monthly partitions) and the receipts and reactions in
//!   `message_reads` / `message_reactions`, whose foreign keys point at the
//!   partitioned table as `bisman partitions migrate`'s swap leaves them.
//!
//! Both layouts hold the same rows: the generator is deterministic for a
//! seed and a row count. A marker row (`bisman_bench_dataset`) records the
//! generator version and shape; a data set with another version, another
//! shape, pending migrations, or one an interrupted run left mid-measurement
//! is rebuilt.

mod after;
mod generate;
mod marker;
mod shape;

use std::time::Instant;

use bisman_db::migrate::MigrationState;
use bisman_db::Migrator;
use sqlx::PgPool;

pub use marker::DatasetMeta;
pub use shape::{Shape, Timeline};

use crate::error::{BenchError, Result};
use crate::server::Server;
use crate::Progress;

/// Bumped whenever generated data would differ: older data sets are rebuilt.
pub const GENERATOR_VERSION: i32 = 3;

/// The last migration of the pre-P3 ERP baseline.
pub const BASELINE_VERSION: i32 = 11;

/// Which schema a data set has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Before P3: flat tables, JSONB receipts, no P3 indexes.
    Before,
    /// After P3: indexes, partitioned and normalised tables.
    After,
}

impl Layout {
    /// `before` or `after`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Before => "before",
            Layout::After => "after",
        }
    }

    /// The database holding this layout at `shape`'s size.
    pub fn database(self, shape: &Shape) -> String {
        format!("bisman_bench_{}_{}", self.name(), shape.rows.db_suffix())
    }
}

/// A data set ready to measure.
pub struct Dataset {
    /// Its layout.
    pub layout: Layout,
    /// Its database.
    pub database: String,
    /// A pool on it.
    pub pool: PgPool,
    /// What it holds.
    pub meta: DatasetMeta,
    /// Whether it was reused rather than built by this run.
    pub reused: bool,
}

impl Dataset {
    /// Marks the data set as being measured: an interrupted run leaves the
    /// mark, and the next run rebuilds instead of trusting half-undone changes.
    pub async fn begin_measuring(&self) -> Result<()> {
        marker::set_in_use(&self.pool, true).await
    }

    /// Clears the mark once every change of the measurements was undone.
    pub async fn end_measuring(&self) -> Result<()> {
        marker::set_in_use(&self.pool, false).await
    }
}

/// The data set of `layout` at `shape`: reused when current (unless
/// `rebuild`), else generated from scratch. With `timeline`, the data set
/// must have been generated on it (the two layouts must hold the same
/// rows); without, a new one starts now.
pub async fn ensure(
    server: &Server,
    layout: Layout,
    shape: &Shape,
    timeline: Option<Timeline>,
    rebuild: bool,
    progress: &dyn Progress,
) -> Result<Dataset> {
    let database = layout.database(shape);
    let existed = server.exists(&database).await?;
    if existed {
        let pool = server.pool(&database, 4).await?;
        match stale_reason(&pool, layout, shape, timeline).await? {
            None if !rebuild => {
                let meta = marker::read(&pool)
                    .await?
                    .ok_or_else(|| BenchError::Setup(format!("{database}: marker vanished")))?;
                progress.note(&format!(
                    "reusing data set {database} ({} messages)",
                    meta.messages
                ));
                return Ok(Dataset {
                    layout,
                    database,
                    pool,
                    meta,
                    reused: true,
                });
            }
            None => progress.note(&format!("rebuilding data set {database}, as asked")),
            Some(reason) => progress.note(&format!("rebuilding data set {database}: {reason}")),
        }
        pool.close().await;
    }
    if existed {
        server.drop_database(&database).await?;
    }
    server.create(&database).await?;
    let pool = server.pool(&database, 4).await?;
    let started = Instant::now();
    let timeline = timeline.unwrap_or_else(Timeline::now);
    build(&pool, &database, layout, shape, &timeline, progress).await?;
    let meta = marker::write(
        &pool,
        layout,
        shape,
        &timeline,
        started.elapsed().as_secs_f64(),
    )
    .await?;
    progress.note(&format!(
        "built data set {database} in {:.0} s",
        meta.build_seconds
    ));
    Ok(Dataset {
        layout,
        database,
        pool,
        meta,
        reused: false,
    })
}

/// Why an existing data set cannot be reused, or `None`.
async fn stale_reason(
    pool: &PgPool,
    layout: Layout,
    shape: &Shape,
    timeline: Option<Timeline>,
) -> Result<Option<String>> {
    let Some(meta) = marker::read(pool).await? else {
        return Ok(Some("it is incomplete (no marker)".into()));
    };
    if meta.generator_version != GENERATOR_VERSION {
        return Ok(Some(format!(
            "made by generator version {}, this is {GENERATOR_VERSION}",
            meta.generator_version
        )));
    }
    if meta.rows != shape.rows.get() as i64 || meta.seed != shape.seed as i64 {
        return Ok(Some("made with another size or seed".into()));
    }
    if timeline.is_some_and(|t| t != meta.timeline()) {
        return Ok(Some(
            "it was generated on another timeline than the other layout".into(),
        ));
    }
    if meta.in_use_since.is_some() {
        return Ok(Some("an interrupted run left it mid-measurement".into()));
    }
    let status = Migrator::embedded()
        .status(pool)
        .await
        .map_err(|source| BenchError::Migrate {
            database: "data set".into(),
            source,
        })?;
    let wanted = |v: i32| layout == Layout::After || v <= BASELINE_VERSION;
    for s in &status {
        let applied = s.state == MigrationState::Applied;
        if matches!(s.state, MigrationState::Modified | MigrationState::Unknown)
            || applied != wanted(s.version)
        {
            return Ok(Some(format!(
                "its migration {:03} {} does not match this binary",
                s.version, s.name
            )));
        }
    }
    Ok(None)
}

async fn migrate(pool: &PgPool, database: &str, target: Option<i32>) -> Result<()> {
    Migrator::embedded()
        .run(pool, target, &|_| {})
        .await
        .map_err(|source| BenchError::Migrate {
            database: database.to_string(),
            source,
        })?;
    Ok(())
}

async fn build(
    pool: &PgPool,
    database: &str,
    layout: Layout,
    shape: &Shape,
    timeline: &Timeline,
    progress: &dyn Progress,
) -> Result<()> {
    let name = layout.name();
    progress.note(&format!(
        "generating data set {database}: {} messages over {} months, {} threads, {} users",
        shape.rows, shape.months, shape.threads, shape.users
    ));
    migrate(pool, database, Some(BASELINE_VERSION)).await?;
    generate::helpers(pool).await?;
    generate::people(pool, shape).await?;
    generate::threads(pool, shape, timeline).await?;
    generate::messages(pool, shape, timeline, name, progress).await?;
    generate::counts(pool).await?;
    if layout == Layout::After {
        progress.start(&format!("{name}: P3 migration on the loaded data"), None);
        migrate(pool, database, None).await?;
        progress.finish();
        after::partitioned(pool, shape, timeline, progress).await?;
    }
    progress.start(&format!("{name}: VACUUM ANALYZE"), None);
    sqlx::raw_sql("VACUUM (ANALYZE)").execute(pool).await?;
    progress.finish();
    Ok(())
}
