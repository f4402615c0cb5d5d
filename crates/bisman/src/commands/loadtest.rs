//! `bisman loadtest`: the load part of the reliability suite
//! (RELIABILITY.md). Starts N `bisman serve` instances on loopback over one
//! database and one shared cache (or loads instances already running),
//! drives the ERP's mix of requests for a bounded time while a prober
//! revokes and grants a permission, then reports requests/s, p50/p99,
//! errors, revocation violations, acknowledged writes missing from
//! PostgreSQL and each instance's memory. Exits non-zero when an invariant
//! failed (an error, a violation, a lost write).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bisman_db::Migrator;
use bisman_load::{verify_writes, Load, LoadConfig, Mix, ServeProcess, Target};
use bisman_server::config::parse_duration;
use bisman_server::demo::DEMO_PASSWORD;

use crate::cli::DatabaseArgs;

/// Options of `bisman loadtest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `bisman serve` instances to start on loopback (ignored with --target).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub instances: u16,
    /// Load instances already running instead (repeatable), e.g. http://127.0.0.1:8080.
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// How long to run (e.g. 30s, 10m).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent workers, each with one request in flight.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub concurrency: u16,
    /// Weights of the operations (login, check, page, read, react, post).
    #[arg(
        long,
        default_value = "login=2,check=40,page=20,read=14,react=12,post=12"
    )]
    pub mix: Mix,
    /// Pause between revoking `expenses/submit` `create` from the demo's
    /// `Staff` role and granting it back (`off`: no prober).
    #[arg(long, default_value = "200ms")]
    pub revoke_every: String,
    /// Per-request timeout.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Shared cache of the started instances: `redis://…`, `redis+cluster://…`
    /// or `postgres` (several instances need one they share).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Cache key prefix of the started instances.
    #[arg(long, default_value = "bisman-loadtest:")]
    pub cache_prefix: String,
    /// Log filter of the started instances.
    #[arg(long, default_value = "warn")]
    pub instance_log: String,
    /// Folder for the started instances' logs (default: a temporary folder).
    #[arg(long)]
    pub logs: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The database (its demo tenant is seeded when missing: use a database of its own).
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// Runs the load and prints the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let revoke_every = match args.revoke_every.trim() {
        "off" | "0" => None,
        raw => Some(parse_duration(raw).map_err(anyhow::Error::msg)?),
    };
    let db = args.db.open().await?;
    if db.is_embedded() {
        Migrator::embedded()
            .run(&db.pool, None, &|_| {})
            .await
            .context("migrating the embedded database")?;
    }
    bisman_server::demo::seed(&db.pool)
        .await
        .context("seeding the demo tenant")?;

    let (mut processes, targets) = if args.targets.is_empty() {
        start_instances(&args, &db.url)?
    } else {
        let targets = args
            .targets
            .iter()
            .map(|t| Target {
                base_url: t.clone(),
                pid: None,
            })
            .collect();
        (Vec::new(), targets)
    };
    let mut config = LoadConfig::demo(targets, DEMO_PASSWORD);
    config.concurrency = usize::from(args.concurrency);
    config.mix = args.mix.clone();
    config.revoke_every = revoke_every;
    config.request_timeout = args.request_timeout;

    eprintln!(
        "loadtest: {} instance(s), {} workers, {:?}",
        config.targets.len(),
        config.concurrency,
        args.duration
    );
    let load = Load::start(config).await.context("starting the load")?;
    let started = Instant::now();
    while started.elapsed() < args.duration {
        let left = args.duration.saturating_sub(started.elapsed());
        tokio::time::sleep(left.min(Duration::from_secs(10))).await;
        eprintln!(
            "  {:>5.0} s: {} requests",
            started.elapsed().as_secs_f64(),
            load.requests()
        );
    }
    let acked = load.acknowledged();
    let mut report = load.stop().await;
    let check = verify_writes(&db.pool, "demo", &acked)
        .await
        .context("looking the acknowledged writes up")?;
    report.writes_check(check);
    for p in &mut processes {
        let _ = p.terminate();
    }
    println!("{}", report.to_markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    db.close().await?;
    let (errors, violations, lost) = (
        report.errors,
        report.revocations.violations,
        report.writes.lost(),
    );
    anyhow::ensure!(
        errors == 0 && violations == 0 && lost == 0,
        "invariants failed: {errors} errors, {violations} revocation violations, {lost} acknowledged writes lost"
    );
    Ok(())
}

/// Starts the instances, each logging to a file of its own.
fn start_instances(
    args: &Args,
    database_url: &str,
) -> anyhow::Result<(Vec<ServeProcess>, Vec<Target>)> {
    let redis = args.redis_url.clone().unwrap_or_else(|| "memory".into());
    anyhow::ensure!(
        args.instances == 1 || !matches!(redis.as_str(), "memory" | "disabled"),
        "{} instances need a cache they share: set REDIS_URL (redis://…) or --redis-url postgres",
        args.instances
    );
    let logs = match &args.logs {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("bisman-loadtest-{}", std::process::id())),
    };
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let exe = std::env::current_exe().context("finding the bisman executable")?;
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", database_url),
        ("REDIS_URL", redis.as_str()),
        ("BISMAN_CACHE_PREFIX", args.cache_prefix.as_str()),
        ("BISMAN_MAINTENANCE", "false"),
        ("BISMAN_DB_POOL_SIZE", "8"),
        ("BISMAN_LOG", args.instance_log.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut processes = Vec::new();
    for i in 0..args.instances {
        let log = logs.join(format!("instance-{i}.log"));
        let p = ServeProcess::spawn(&exe, &env, &log)
            .with_context(|| format!("starting instance {i}"))?;
        eprintln!(
            "  instance {i}: {} (pid {}, log {})",
            p.base_url(),
            p.pid(),
            log.display()
        );
        processes.push(p);
    }
    let targets = processes
        .iter()
        .map(|p| Target {
            base_url: p.base_url(),
            pid: Some(p.pid()),
        })
        .collect();
    Ok((processes, targets))
}
