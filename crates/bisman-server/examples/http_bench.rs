//! HTTP benchmark (not a test): the permission-check route and the
//! message-page route of the full service, beside a bare axum handler, in
//! the same process and the same run, measured with `wrk` on loopback.
//!
//! ```sh
//! apt-get install -y wrk
//! cargo run --release -p bisman-server --example http_bench -- [seconds] [connections] [rounds]
//! ```
//!
//! It creates a migrated database on the test PostgreSQL
//! (`BISMAN_TEST_DATABASE_URL`), seeds the demo tenant, and uses the test
//! Redis (`BISMAN_TEST_REDIS_URL`) with the near-cache, as production would;
//! `BENCH_REDIS_URL=memory` measures the in-process store instead. Rounds
//! are interleaved (bare, check, page, bare, …) and medians reported.

use std::process::Command;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use bisman_server::{ServeConfig, Service};
use bisman_testkit::TestDb;
use serde_json::json;

#[derive(Debug, Clone, Default)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(10);
    let conns: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (urls, token, mode) = rt.block_on(setup())?;
    println!("cache mode: {mode}; wrk -t1 -c{conns} -d{secs}s, {rounds} interleaved rounds");
    let names = [
        "bare axum handler",
        "GET /api/v1/permissions/check",
        "GET /api/v1/threads/{id}/messages?limit=50",
    ];
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); 3];
    for round in 0..rounds {
        for (i, url) in urls.iter().enumerate() {
            let run = wrk(url, &token, secs, conns)?;
            eprintln!("round {round}: {}: {:.0} req/s", names[i], run.rps);
            results[i].push(run);
        }
    }
    let bare = median(results[0].iter().map(|r| r.rps).collect());
    println!();
    println!("| route | req/s (median) | vs bare | p50 ms | p90 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (i, runs) in results.iter().enumerate() {
        let rps = median(runs.iter().map(|r| r.rps).collect());
        println!(
            "| {} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} |",
            names[i],
            rps,
            100.0 * rps / bare,
            median(runs.iter().map(|r| r.p50_ms).collect()),
            median(runs.iter().map(|r| r.p90_ms).collect()),
            median(runs.iter().map(|r| r.p99_ms).collect()),
        );
    }
    Ok(())
}

async fn setup() -> anyhow::Result<(Vec<String>, String, String)> {
    let db = Box::leak(Box::new(TestDb::migrated().await));
    bisman_server::demo::seed(&db.pool).await?;
    let facts = bisman_server::demo::facts(&db.pool).await?;
    let mut config = ServeConfig {
        bind: "127.0.0.1:0".into(),
        maintenance: false,
        ..ServeConfig::default()
    };
    config.cache.cache_prefix = bisman_testkit::redis_prefix();
    config.cache.redis_url =
        Some(std::env::var("BENCH_REDIS_URL").unwrap_or_else(|_| bisman_testkit::redis_url()));
    let service = Service::new(&config, db.new_pool(16).await).await?;
    let mode = service.state().cache.config().mode.label().to_string();
    service
        .state()
        .cache
        .wait_until_synced(Duration::from_secs(5))
        .await;
    let bound = service.bind().await?;
    let addr = bound.local_addr();
    tokio::spawn(bound.run(std::future::pending()));

    let bare = Router::new().route("/", get(|| async { Json(json!({"ok": true})) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, bare).await });

    let token = login(&format!("http://{addr}")).await?;
    Ok((
        vec![
            format!("http://{bare_addr}/"),
            format!(
                "http://{addr}/api/v1/permissions/check?module=expenses&page=submit&action=create"
            ),
            format!(
                "http://{addr}/api/v1/threads/{}/messages?limit=50",
                facts.thread_id
            ),
        ],
        token,
        mode,
    ))
}

async fn login(base: &str) -> anyhow::Result<String> {
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", &format!("{base}/api/v1/auth/login"), "-H", "content-type: application/json", "-d"])
        .arg(json!({"tenant": "demo", "email": "staff@demo.test", "password": bisman_server::demo::DEMO_PASSWORD}).to_string())
        .output()?;
    let body: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    body["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("login failed: {body}"))
}

fn wrk(url: &str, token: &str, secs: u64, conns: u32) -> anyhow::Result<Run> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}"), url])
        .output()
        .map_err(|e| anyhow::anyhow!("running wrk (apt-get install -y wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut run = Run::default();
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => run.rps = v.parse().unwrap_or(0.0),
            (Some("50%"), Some(v)) => run.p50_ms = millis(v),
            (Some("90%"), Some(v)) => run.p90_ms = millis(v),
            (Some("99%"), Some(v)) => run.p99_ms = millis(v),
            _ => {}
        }
    }
    if text.contains("Non-2xx") {
        anyhow::bail!("{url} answered non-2xx:\n{text}");
    }
    Ok(run)
}

fn millis(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(0.0);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => n,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
