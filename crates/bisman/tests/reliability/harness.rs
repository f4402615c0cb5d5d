//! What every scenario shares: `bisman serve` instances on one database and
//! one cache, the load driver's configuration, readiness waits, and one
//! scenario at a time (each runs several processes on a 2-core machine).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bisman_load::{LoadConfig, Report, ServeProcess, Target};
use serde_json::Value;

/// One scenario at a time in this binary.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An environment variable as a number, or `default`.
pub fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests to let through in each phase of a fault scenario
/// (`BISMAN_FAULT_REQUESTS`, default 400).
pub fn per_phase() -> u64 {
    env_u64("BISMAN_FAULT_REQUESTS", 400)
}

/// A generous bound for anything that waits (a slow, shared machine).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A folder for this scenario's logs.
pub fn log_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("bisman-reliability-{name}-{nanos}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// N `bisman serve` processes over one database and one cache.
pub struct Cluster {
    pub instances: Vec<ServeProcess>,
}

impl Cluster {
    /// Starts `n` instances with `env` (DATABASE_URL, REDIS_URL, …) plus
    /// quiet defaults, logging into `logs`.
    pub fn start(n: usize, env: &[(&str, String)], logs: &std::path::Path) -> Cluster {
        let mut all: Vec<(String, String)> = vec![
            ("BISMAN_MAINTENANCE".into(), "false".into()),
            ("BISMAN_DB_POOL_SIZE".into(), "6".into()),
            ("BISMAN_LOG".into(), "warn".into()),
        ];
        for (k, v) in env {
            all.retain(|(key, _)| key != k);
            all.push((k.to_string(), v.clone()));
        }
        std::fs::create_dir_all(logs).unwrap();
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_bisman"));
        let instances = (0..n)
            .map(|i| {
                ServeProcess::spawn(&exe, &all, &logs.join(format!("instance-{i}.log")))
                    .unwrap_or_else(|e| panic!("instance {i}: {e}"))
            })
            .collect();
        Cluster { instances }
    }

    /// The load driver's targets.
    pub fn targets(&self) -> Vec<Target> {
        self.instances
            .iter()
            .map(|p| Target {
                base_url: p.base_url(),
                pid: Some(p.pid()),
            })
            .collect()
    }

    /// Waits until every instance's `/readyz` body satisfies `ready`.
    pub async fn wait_ready(&self, what: &str, ready: impl Fn(&Value) -> bool) {
        for p in &self.instances {
            wait_ready(&p.base_url(), what, &ready).await;
        }
    }
}

/// Waits until `base/readyz` answers a body satisfying `ready`.
pub async fn wait_ready(base: &str, what: &str, ready: &impl Fn(&Value) -> bool) {
    let http = bisman_load::client::Http::new(Duration::from_secs(10));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let url = format!("{base}/readyz");
        let reply = http.call(http::Method::GET, &url, None, None).await;
        if let Ok(r) = &reply {
            if ready(&r.body) {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{base} not {what} after {PATIENCE:?}: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/readyz` says PostgreSQL answers.
pub fn postgres_ok(body: &Value) -> bool {
    body["postgres"] == "ok"
}

/// `/readyz` says the shared store answers and the near-cache may serve
/// again (its invalidation subscription is confirmed).
pub fn cache_back(body: &Value) -> bool {
    body["cache"]["store_ok"] == true && body["cache"]["near_usable"] == true
}

/// The demo tenant's load, with tokens kept for the scans.
pub fn load_config(targets: Vec<Target>) -> LoadConfig {
    let mut c = LoadConfig::demo(targets, bisman_server::demo::DEMO_PASSWORD);
    c.concurrency = env_u64("BISMAN_LOAD_CONCURRENCY", 6) as usize;
    c.request_timeout = Duration::from_secs(60);
    c.keep_secrets = true;
    c
}

/// Waits until `n` more requests finished in the current phase (a bound,
/// not an assertion: a slow machine makes fewer).
pub async fn let_through(load: &bisman_load::Load, n: u64) {
    if !load.wait_requests(n, PATIENCE).await {
        eprintln!(
            "(only {} requests in this phase after {PATIENCE:?})",
            load.done_in_phase()
        );
    }
}

/// Lets a fault last until `n` requests finished in its phase, or `max`
/// passed (the fault's planned length: requests that wait on a dead
/// dependency are slow, and the point is what happens, not how many).
pub async fn let_fault_last(load: &bisman_load::Load, n: u64, max: Duration) {
    load.wait_requests(n, max).await;
}

/// Prints the report (visible with `--nocapture`) and checks the
/// invariants every scenario shares: no error in a strict phase, no 5xx
/// other than 503 anywhere, no revoked permission granted, revocations
/// actually judged.
pub fn check_common(name: &str, report: &Report) {
    eprintln!("\n# {name}\n\n{}", report.to_markdown());
    let other_5xx: u64 = report.phases.iter().map(|p| p.counts.server_errors).sum();
    assert_eq!(other_5xx, 0, "{name}: a 5xx other than 503");
    assert_eq!(report.errors, 0, "{name}: failures in a strict phase");
    assert_eq!(
        report.revocations.violations, 0,
        "{name}: a revoked permission was granted"
    );
    assert!(
        report.revocations.judged_checks > 0 && report.revocations.revokes > 0,
        "{name}: the prober judged nothing"
    );
    if let Some(ryw) = &report.read_your_writes {
        assert_eq!(ryw.missed, 0, "{name}: a poster did not read its post back");
    }
}

/// The phase named `name`.
pub fn phase<'a>(report: &'a Report, name: &str) -> &'a bisman_load::report::PhaseReport {
    report
        .phases
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no phase {name}"))
}
