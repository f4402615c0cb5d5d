//! `bisman loadtest` itself: it starts its instances, runs, reports JSON,
//! and exits 0 when every invariant held.

use std::process::Command;

use bisman_testkit::TestDb;
use serde_json::Value;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bisman_loadtest_runs_and_reports() {
    let _one = ONE_AT_A_TIME.lock().await;
    let db = TestDb::migrated().await;
    let logs = log_dir("cli");
    let json = logs.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_bisman"))
        .args([
            "loadtest",
            "--instances",
            "2",
            "--duration",
            "3s",
            "--concurrency",
            "4",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--logs")
        .arg(&logs)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", bisman_testkit::redis_url())
        .args(["--cache-prefix", &bisman_testkit::redis_prefix()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("requests/s"), "{stdout}");
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["errors"], 0);
    assert_eq!(report["revocations"]["violations"], 0);
    assert_eq!(report["writes_checked"], true);
    assert!(report["total"]["requests"].as_u64().unwrap() > 0);
    assert_eq!(report["instances"].as_array().unwrap().len(), 2);

    // Several instances need a cache they share.
    let refused = Command::new(env!("CARGO_BIN_EXE_bisman"))
        .args([
            "loadtest",
            "--instances",
            "2",
            "--redis-url",
            "memory",
            "--duration",
            "1s",
        ])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cache they share"));
}
