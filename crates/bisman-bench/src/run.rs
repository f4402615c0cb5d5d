//! One run: data sets, workload, every measurement, the report.

use std::time::Instant;

use bisman_cache::CacheMode;
use chrono::Utc;

use crate::data::{self, Dataset, Layout, Shape};
use crate::error::Result;
use crate::machine::{load_average, Machine};
use crate::measure::workload::Workload;
use crate::measure::{caches, messages, receipts, retention, Measurement};
use crate::options::{BenchOptions, Effort};
use crate::report::{DatasetInfo, Report};
use crate::server::{RunLock, Server};
use crate::{peers, Progress};

/// The Redis URL to measure with, or a note saying why there is none.
fn redis_choice(url: Option<&str>) -> Result<(Option<&str>, Option<String>)> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok((None, Some(caches::NO_REDIS.into())));
    };
    match CacheMode::parse(Some(url))? {
        CacheMode::Redis { .. } => Ok((Some(url), None)),
        other => Ok((
            None,
            Some(format!(
                "REDIS_URL is `{}`: the Redis layers and peers need one Redis (redis://…) and were skipped",
                other.label()
            )),
        )),
    }
}

async fn info(d: &Dataset) -> Result<DatasetInfo> {
    let size_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&d.pool)
        .await?;
    Ok(DatasetInfo {
        database: d.database.clone(),
        reused: d.reused,
        size_bytes,
        meta: d.meta.clone(),
    })
}

/// Runs the benchmark: builds or reuses the data sets, measures, writes
/// `bench.md`, `bench.json` and `bench.svg` into `opts.out`, and returns
/// the report.
pub async fn run(opts: &BenchOptions, progress: &dyn Progress) -> Result<Report> {
    let started = Instant::now();
    let started_at = Utc::now();
    let effort = opts.effort();
    let shape = Shape::for_rows(opts.rows, opts.seed);
    let server = Server::connect(&opts.database_url).await?;
    let (redis_url, redis_note) = redis_choice(opts.redis_url.as_deref())?;
    let mut notes: Vec<String> = redis_note.into_iter().collect();
    let mut machine = Machine::describe(&server, redis_url).await?;
    if !machine.release_build {
        notes.push("debug build: timings are much slower than a release build's".into());
    }

    let lock = RunLock::take(&server, &format!("bisman-bench:{}", shape.rows.db_suffix())).await?;
    let before = data::ensure(
        &server,
        Layout::Before,
        &shape,
        None,
        opts.rebuild,
        progress,
    )
    .await?;
    let timeline = Some(before.meta.timeline());
    let after = data::ensure(
        &server,
        Layout::After,
        &shape,
        timeline,
        opts.rebuild,
        progress,
    )
    .await?;
    let work = Workload::pick(&after, &effort, opts.seed).await?;
    before.begin_measuring().await?;
    after.begin_measuring().await?;
    let prefix = caches::run_prefix();
    let measured = measure_all(
        &before, &after, &work, &effort, redis_url, &prefix, progress,
    )
    .await;
    if let Some(url) = redis_url {
        if let Err(e) = caches::clean_up(url, &prefix).await {
            tracing::warn!(error = %e, "could not delete this run's Redis keys");
        }
    }
    let mut measurements = measured?;
    measurements.sort_by_key(|m| (m.operation, m.layer));
    before.end_measuring().await?;
    after.end_measuring().await?;
    let datasets = vec![info(&before).await?, info(&after).await?];
    before.pool.close().await;
    after.pool.close().await;
    lock.release().await;
    server.close().await;

    machine.load_at_end = load_average();
    let mut report = Report {
        tool: "bisman bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        command: opts.command.clone(),
        started_at,
        seconds: started.elapsed().as_secs_f64(),
        quick: opts.quick,
        machine,
        shape,
        datasets,
        effort,
        peers_built: peers::ENABLED,
        spec_table: Vec::new(),
        aims: Vec::new(),
        peers: Vec::new(),
        measurements,
        notes,
    };
    report.derive_tables();
    report.write(&opts.out)?;
    Ok(report)
}

async fn measure_all(
    before: &Dataset,
    after: &Dataset,
    work: &Workload,
    effort: &Effort,
    redis_url: Option<&str>,
    prefix: &str,
    progress: &dyn Progress,
) -> Result<Vec<Measurement>> {
    let mut out = caches::measure(after, work, effort, redis_url, prefix, progress).await?;
    out.extend(messages::measure(before, after, &work.pairs, effort, progress).await?);
    out.extend(
        receipts::measure(before, after, &work.pairs, &work.unread, effort, progress).await?,
    );
    out.extend(retention::measure(before, after, effort, progress).await?);
    Ok(out)
}
