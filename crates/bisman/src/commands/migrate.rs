//! `bisman migrate`: apply the embedded migrations; `bisman migrate status`.

use anyhow::Context;
use bisman_db::migrate::{MigrationState, Progress};
use bisman_db::Migrator;

use crate::cli::DatabaseArgs;

/// Options of `bisman migrate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `status` lists the migrations and whether each is applied.
    #[command(subcommand)]
    pub action: Option<Action>,
    /// Stop after this version (e.g. 11 for the pre-P3 ERP baseline).
    #[arg(long)]
    pub target: Option<i32>,
    /// The database.
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// What `bisman migrate` can do besides applying.
#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List every migration with its state.
    Status,
}

/// Runs the command.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = args.db.open().await?;
    let result = match args.action {
        Some(Action::Status) => status(&db.pool).await,
        None => apply(&db.pool, args.target).await,
    };
    db.close().await?;
    result
}

async fn apply(pool: &sqlx::PgPool, target: Option<i32>) -> anyhow::Result<()> {
    let report = |p: Progress| match p {
        Progress::Started { version, name } => eprintln!("applying {version:03} {name} …"),
        Progress::Statement { statement, .. } => tracing::info!(%statement, "running"),
        Progress::RebuildingInvalidIndex { index } => {
            eprintln!("  rebuilding index {index}, left invalid by an interrupted run")
        }
        Progress::Applied {
            version,
            name,
            millis,
        } => eprintln!("applied  {version:03} {name} in {millis} ms"),
    };
    let applied = Migrator::embedded()
        .run(pool, target, &report)
        .await
        .context("migrating")?;
    if applied.is_empty() {
        println!(
            "database is up to date (migration {:03})",
            target.unwrap_or(Migrator::embedded().latest_version())
        );
    } else {
        println!(
            "applied {} migration(s); database is at {:03}",
            applied.len(),
            applied.last().copied().unwrap_or(0)
        );
    }
    Ok(())
}

async fn status(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let rows = Migrator::embedded()
        .status(pool)
        .await
        .context("reading migration status")?;
    println!("{:<8} {:<28} {:<9} applied at", "version", "name", "state");
    for r in &rows {
        let state = match r.state {
            MigrationState::Applied => "applied",
            MigrationState::Pending => "pending",
            MigrationState::Modified => "MODIFIED",
            MigrationState::Unknown => "UNKNOWN",
        };
        let at = r
            .applied_at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_default();
        println!(
            "{:<8} {:<28} {:<9} {at}",
            format!("{:03}", r.version),
            r.name,
            state
        );
    }
    if rows
        .iter()
        .any(|r| matches!(r.state, MigrationState::Modified | MigrationState::Unknown))
    {
        anyhow::bail!(
            "the database holds migrations this binary does not know or carries differently"
        );
    }
    Ok(())
}
