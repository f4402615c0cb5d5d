//! The jobs themselves. Each returns a one-line summary for the job log.

use std::path::PathBuf;

use anyhow::Context;
use bisman_db::lifecycle::premake::{premake, PremakeOptions};
use bisman_db::lifecycle::retain::{retain, RetainOptions};
use bisman_db::lifecycle::{registry, LockPolicy, NoProgress};
use sqlx::PgPool;

/// A maintenance job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    /// Months ahead for every managed table (`create_future_partitions`,
    /// by the lifecycle crate's batched premake).
    Premake,
    /// Old months archived (when configured) and dropped.
    Retention,
    /// `cleanup_expired_permission_cache()`.
    PermissionCacheCleanup,
    /// `snapshot_pg_stat_statements()`.
    StatsSnapshot,
}

impl Job {
    /// Every job.
    pub const ALL: [Job; 4] = [
        Job::Premake,
        Job::Retention,
        Job::PermissionCacheCleanup,
        Job::StatsSnapshot,
    ];

    /// Its name in the job log, metrics and lock key.
    pub fn name(self) -> &'static str {
        match self {
            Job::Premake => "premake",
            Job::Retention => "retention",
            Job::PermissionCacheCleanup => "permission_cache_cleanup",
            Job::StatsSnapshot => "stats_snapshot",
        }
    }
}

/// What the jobs need besides the pool.
#[derive(Debug, Clone, Default)]
pub struct JobContext {
    /// Archive folder for archive-first retention.
    pub archive_dir: Option<PathBuf>,
    /// Months kept (each table's registry value when `None`).
    pub keep_months: Option<i32>,
}

impl Job {
    /// Runs the job once; a summary of what it did.
    #[tracing::instrument(skip(pool, ctx), fields(job = self.name()))]
    pub async fn run(self, pool: &PgPool, ctx: &JobContext) -> anyhow::Result<String> {
        match self {
            Job::Premake => run_premake(pool).await,
            Job::Retention => run_retention(pool, ctx).await,
            Job::PermissionCacheCleanup => {
                let n: i32 = sqlx::query_scalar("SELECT cleanup_expired_permission_cache()")
                    .fetch_one(pool)
                    .await
                    .context("cleanup_expired_permission_cache()")?;
                Ok(format!("{n} expired permission_cache entries removed"))
            }
            Job::StatsSnapshot => {
                let n: i32 = sqlx::query_scalar("SELECT snapshot_pg_stat_statements()")
                    .fetch_one(pool)
                    .await
                    .context("snapshot_pg_stat_statements()")?;
                let problem: Option<String> =
                    sqlx::query_scalar("SELECT bisman_stat_statements_problem()")
                        .fetch_one(pool)
                        .await?;
                Ok(match problem {
                    Some(p) => format!("no snapshot: {p}"),
                    None => format!("{n} statements recorded"),
                })
            }
        }
    }
}

async fn run_premake(pool: &PgPool) -> anyhow::Result<String> {
    let roots = registry::roots(pool, &[])
        .await
        .context("reading the partition registry")?;
    let made = premake(pool, &roots, &PremakeOptions::default(), &NoProgress)
        .await
        .context("premaking partitions")?;
    let created = made.iter().filter(|m| m.created).count();
    let moved: i64 = made.iter().map(|m| m.rows_moved).sum();
    Ok(format!(
        "{created} partitions created, {moved} rows moved out of default partitions, {} checked",
        made.len()
    ))
}

async fn run_retention(pool: &PgPool, ctx: &JobContext) -> anyhow::Result<String> {
    let roots = registry::roots(pool, &[])
        .await
        .context("reading the partition registry")?;
    let mut dropped = 0;
    let mut skipped = Vec::new();
    match &ctx.archive_dir {
        Some(dir) => {
            // Archive first: export, verify, then drop (never unarchived rows).
            let opts = RetainOptions {
                keep_months: ctx.keep_months,
                archive_dir: dir.clone(),
                no_archive: false,
                dry_run: false,
                locks: LockPolicy::default(),
            };
            for line in retain(pool, &roots, &opts, &NoProgress)
                .await
                .context("archive-first retention")?
            {
                if line.action == "dropped" {
                    dropped += 1;
                } else {
                    skipped.push(format!("{} ({})", line.partition, line.reason));
                }
            }
        }
        None => {
            // The SQL path drops only months that are empty or archived with
            // exactly their present rows; the rest is reported as skipped
            // with the reason. Its locks are retried on a short timeout and
            // its statement has an explicit limit, not the pool's.
            for root in &roots {
                let keep = ctx.keep_months.unwrap_or(root.past_months);
                let mut tx = pool.begin().await?;
                LockPolicy::default().apply(&mut tx).await?;
                let lines: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT partition_name, action, reason FROM drop_old_partitions($1, $2)",
                )
                .bind(&root.base_table)
                .bind(keep)
                .fetch_all(&mut *tx)
                .await
                .with_context(|| format!("drop_old_partitions('{}', {keep})", root.base_table))?;
                tx.commit().await?;
                for (partition, action, reason) in lines {
                    if action == "dropped" {
                        dropped += 1;
                    } else {
                        skipped.push(format!("{partition} ({reason})"));
                    }
                }
            }
        }
    }
    let mut summary = format!("{dropped} partitions dropped");
    if !skipped.is_empty() {
        summary.push_str(&format!("; kept {}: {}", skipped.len(), skipped.join(", ")));
    }
    if let Some((cut, _)) = summary.char_indices().nth(2000) {
        summary.truncate(cut);
    }
    Ok(summary)
}
