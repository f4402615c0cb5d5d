//! `bisman loadtest`: the load part of the reliability suite
//! (RELIABILITY.md). Starts N `bisman serve` instances on loopback over one
//! database and one shared cache (or loads instances already running),
//! drives the ERP's mix of requests for a bounded time while a prober
//! revokes and grants a permission, then reports requests/s, p50/p99,
//! errors, revocation violations, acknowledged writes missing from
//! PostgreSQL and each instance's memory. Exits non-zero when an invariant
//! failed (an error, a violation, a lost write, a post its poster could not
//! read back).
//!
//! With `--replicas N` it first makes N hot standbys of the database
//! (`pg_basebackup -R`, as the embedded server makes its primary) and the
//! instances read from them; the report then adds each replica's reads and
//! replay lag, sampled from the instances' `/readyz` every second.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bisman_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use bisman_db::Migrator;
use bisman_load::cpu::CpuMeter;
use bisman_load::{verify_writes, Load, LoadConfig, Mix, ReplicaWatch, ServeProcess, Target};
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
    /// Weights of the operations (login, check, page, read, react, post,
    /// threads, unread, readers, reactions, summary, approvals), or a named
    /// mix: `default` or `read-heavy`.
    #[arg(
        long,
        default_value = "login=2,check=40,page=20,read=14,react=12,post=12"
    )]
    pub mix: Mix,
    /// Make this many hot standbys of the database for the run
    /// (`pg_basebackup -R` into `<data-dir>/loadtest-replicas`, free loopback
    /// ports; stopped and removed afterwards); the started instances read
    /// from them.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=8))]
    pub replicas: u16,
    /// Standbys already running for the started instances to read from (repeatable).
    #[arg(long = "replica-url")]
    pub replica_urls: Vec<String>,
    /// After each post, read the thread back as its poster (on the next
    /// instance) and require the post in it. On whenever replicas are used.
    #[arg(long)]
    pub read_your_writes: bool,
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

    let standbys = start_standbys(&args, &db.url).await?;
    let mut replica_urls = args.replica_urls.clone();
    replica_urls.extend(standbys.iter().map(|(_, url)| url.clone()));
    let with_replicas = !replica_urls.is_empty();
    let (mut processes, targets) = if args.targets.is_empty() {
        start_instances(&args, &db.url, &replica_urls)?
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
    config.check_read_your_writes = args.read_your_writes || with_replicas;

    eprintln!(
        "loadtest: {} instance(s), {} workers, {:?}",
        config.targets.len(),
        config.concurrency,
        args.duration
    );
    let watch = with_replicas.then(|| {
        ReplicaWatch::start(
            config.targets.iter().map(|t| t.base_url.clone()).collect(),
            Duration::from_secs(1),
        )
    });
    // Where the CPU goes: every process this run started or owns.
    let mut measured: Vec<(String, u32)> = Vec::new();
    if let Some(pid) = db.embedded().and_then(|s| postmaster_pid(s.pgdata())) {
        measured.push(("PostgreSQL primary".into(), pid));
    }
    for (i, (s, _)) in standbys.iter().enumerate() {
        if let Some(pid) = postmaster_pid(s.pgdata()) {
            measured.push((format!("PostgreSQL standby {i}"), pid));
        }
    }
    for (i, t) in config.targets.iter().enumerate() {
        if let Some(pid) = t.pid {
            measured.push((format!("bisman serve {i}"), pid));
        }
    }
    measured.push(("load generator".into(), std::process::id()));
    let cpu = CpuMeter::start(measured);
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
    let (cpu_used, cpu_wall) = cpu.finish();
    let replicas = match watch {
        Some(w) => Some(w.finish().await),
        None => None,
    };
    let check = verify_writes(&db.pool, "demo", &acked)
        .await
        .context("looking the acknowledged writes up")?;
    report.writes_check(check);
    for p in &mut processes {
        let _ = p.terminate();
    }
    println!("{}", report.to_markdown());
    if let Some(r) = &replicas {
        println!("{}", r.to_markdown());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{}",
        bisman_load::cpu::to_markdown(&cpu_used, cpu_wall, cores)
    );
    if let Some(path) = &args.json {
        let mut json = serde_json::to_value(&report)?;
        if let Some(r) = &replicas {
            json["replicas"] = serde_json::to_value(r)?;
        }
        json["cpu"] =
            serde_json::json!({ "wall_seconds": cpu_wall, "cores": cores, "processes": cpu_used });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    stop_standbys(&args, standbys).await;
    db.close().await?;
    let (errors, violations, lost) = (
        report.errors,
        report.revocations.violations,
        report.writes.lost(),
    );
    let missed = report.read_your_writes.as_ref().map_or(0, |r| r.missed);
    anyhow::ensure!(
        errors == 0 && violations == 0 && lost == 0 && missed == 0,
        "invariants failed: {errors} errors, {violations} revocation violations, {lost} acknowledged writes lost, \
         {missed} posts missing from their poster's next page"
    );
    Ok(())
}

/// The postmaster's process id of a running server's data folder.
fn postmaster_pid(pgdata: &std::path::Path) -> Option<u32> {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Where `--replicas` keeps its standbys.
fn standby_root(args: &Args) -> std::path::PathBuf {
    args.db.data_dir.join("loadtest-replicas")
}

/// Makes `--replicas` standbys of the database at `primary_url`; each with
/// the URL of the same database on it.
async fn start_standbys(
    args: &Args,
    primary_url: &str,
) -> anyhow::Result<Vec<(EmbeddedPostgres, String)>> {
    let mut out = Vec::new();
    for i in 0..args.replicas {
        let started = std::time::Instant::now();
        let server = EmbeddedPostgres::start_standby(
            primary_url,
            &EmbeddedOptions {
                data_dir: standby_root(args).join(i.to_string()),
                port: None,
            },
        )
        .await
        .with_context(|| format!("making standby {i} (pg_basebackup -R)"))?;
        let url = standby_url(primary_url, server.port())?;
        eprintln!(
            "  standby {i}: 127.0.0.1:{} ({:.1} s to copy and start)",
            server.port(),
            started.elapsed().as_secs_f64()
        );
        out.push((server, url));
    }
    Ok(out)
}

/// Stops the standbys `--replicas` made and removes their folder.
async fn stop_standbys(args: &Args, standbys: Vec<(EmbeddedPostgres, String)>) {
    if standbys.is_empty() {
        return;
    }
    for (server, _) in standbys {
        if let Err(e) = server.stop().await {
            eprintln!("stopping a standby: {e}");
        }
    }
    let _ = std::fs::remove_dir_all(standby_root(args));
}

/// `primary_url` with its host and port replaced by the standby's
/// (`127.0.0.1:port`): same user, password, database and parameters.
fn standby_url(primary_url: &str, port: u16) -> anyhow::Result<String> {
    let (scheme, rest) = primary_url
        .split_once("://")
        .context("DATABASE_URL is not a URL")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let user = authority.rsplit_once('@').map(|(u, _)| u);
    Ok(match user {
        Some(u) => format!("{scheme}://{u}@127.0.0.1:{port}{path}"),
        None => format!("{scheme}://127.0.0.1:{port}{path}"),
    })
}

/// Starts the instances, each logging to a file of its own.
fn start_instances(
    args: &Args,
    database_url: &str,
    replica_urls: &[String],
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
    let replicas = replica_urls.join(",");
    let env: Vec<(String, String)> = [
        ("DATABASE_REPLICA_URLS", replicas.as_str()),
        ("BISMAN_REPLICA_POOL_SIZE", "8"),
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

#[cfg(test)]
mod tests {
    use super::standby_url;

    #[test]
    fn standby_urls_keep_everything_but_the_address() {
        for (primary, standby) in [
            (
                "postgres://postgres@127.0.0.1:5432/bisman",
                "postgres://postgres@127.0.0.1:6000/bisman",
            ),
            (
                "postgres://u:p%40ss@db.example:5432/erp?sslmode=disable",
                "postgres://u:p%40ss@127.0.0.1:6000/erp?sslmode=disable",
            ),
            ("postgresql://db/erp", "postgresql://127.0.0.1:6000/erp"),
            ("postgres://db:5432", "postgres://127.0.0.1:6000"),
        ] {
            assert_eq!(standby_url(primary, 6000).unwrap(), standby);
        }
        assert!(standby_url("nonsense", 1).is_err());
    }
}
