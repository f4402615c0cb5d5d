//! `bisman partitions` and `bisman normalize` end to end: a fill killed
//! mid-way (SIGKILL) and resumed without duplicates while rows keep
//! arriving, status as JSON, and clear errors for bad input.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bisman_testkit::TestDb;

const TENANT: &str = "00000000-0000-0000-0000-000000000001";

fn bisman(args: &[&str], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bisman"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("BISMAN_LOG", "error")
        .output()
        .expect("run bisman")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn scalar(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&db.pool).await.unwrap()
}

#[tokio::test]
async fn a_killed_fill_resumes_without_duplicates() {
    let db = TestDb::migrated().await;
    sqlx::raw_sql(&format!(
        "INSERT INTO tenants (id, slug, name) VALUES ('{TENANT}', 't', 'T');
         INSERT INTO client_usage_events (tenant_id, event_type, occurred_at)
         SELECT '{TENANT}', 'view', now() - make_interval(mins => g) FROM generate_series(1, 60000) g;"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let writer_pool = db.new_pool(1).await;
    let writer = tokio::spawn(async move {
        for _ in 0..300 {
            sqlx::query(
                "INSERT INTO client_usage_events (tenant_id, event_type) VALUES ($1::uuid, 'live')",
            )
            .bind(TENANT)
            .execute(&writer_pool)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    let mut child = Command::new(env!("CARGO_BIN_EXE_bisman"))
        .args([
            "partitions",
            "migrate",
            "client_usage_events",
            "--batch-size",
            "500",
            "--sleep-ms",
            "20",
            "--no-swap",
        ])
        .env("DATABASE_URL", &db.url)
        .env("BISMAN_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut copied = 0;
    for _ in 0..300 {
        copied = sqlx::query_scalar::<_, i64>(
            "SELECT coalesce((SELECT rows_copied FROM bisman_table_migrations WHERE base_table = 'client_usage_events'), 0)",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if copied >= 5_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(copied >= 5_000, "the fill made progress before the kill");
    let state: String = sqlx::query_scalar("SELECT state FROM bisman_table_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(state, "filling", "killed mid-way");
    let partial = scalar(&db, "SELECT count(*) FROM client_usage_events_partitioned").await;
    assert!(partial < 60_000, "{partial}");

    let out = bisman(
        &[
            "partitions",
            "migrate",
            "client_usage_events",
            "--batch-size",
            "5000",
        ],
        &db.url,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("client_usage_events: swapped"),
        "{}",
        text(&out)
    );
    writer.await.unwrap();
    let total = scalar(&db, "SELECT count(*) FROM client_usage_events").await;
    let distinct = scalar(&db, "SELECT count(DISTINCT id) FROM client_usage_events").await;
    assert_eq!(
        total, 60_300,
        "every row, also those written during the fill"
    );
    assert_eq!(distinct, total, "no duplicates");
    let retired = scalar(&db, "SELECT count(*) FROM client_usage_events_retired").await;
    assert!(retired <= total);

    // Status as JSON, for scripts.
    let out = bisman(&["partitions", "status", "--json"], &db.url);
    assert!(out.status.success(), "{}", text(&out));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cue = status
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"]["base_table"] == "client_usage_events")
        .unwrap();
    assert_eq!(cue["live_is_partitioned"], true);
    assert_eq!(cue["migration_state"], "swapped");
    assert!(cue["premade_months"].as_u64().unwrap() >= 11);
    // What the data lifecycle reports: nothing waiting, detached or changed.
    assert_eq!(cue["default_rows"], 0);
    assert_eq!(cue["late_rows"], 0);
    assert_eq!(cue["default_months"], serde_json::json!([]));
    assert_eq!(cue["detached_months"], serde_json::json!([]));
    assert_eq!(cue["changed_since_archive"], serde_json::json!([]));

    let out = bisman(&["partitions", "unswap", "client_usage_events"], &db.url);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        scalar(&db, "SELECT count(*) FROM client_usage_events").await,
        60_300
    );
}

#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let db = TestDb::migrated().await;
    for (args, expect) in [
        (
            vec!["partitions", "migrate", "users"],
            "unknown partitioned table \"users\"",
        ),
        (
            vec!["partitions", "premake", "--table", "x; drop table users"],
            "unknown partitioned table",
        ),
        (
            vec!["partitions", "retain", "--keep-months=-3"],
            "months to keep must be between 0 and 1200",
        ),
        (
            vec!["partitions", "restore", "/nonexistent/x.manifest.json"],
            "No such file",
        ),
        (
            vec!["partitions", "verify", "/nonexistent/x.csv.gz"],
            "No such file",
        ),
        (vec!["normalize", "verify", "likes"], "unknown kind"),
        (vec!["partitions", "unswap", "audit_logs"], "is not swapped"),
    ] {
        let out = bisman(&args, &db.url);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(expect), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("panicked"), "{}", text(&out));
    }
    let users = scalar(&db, "SELECT count(*) FROM pg_class WHERE relname = 'users'").await;
    assert_eq!(users, 1);
}

#[tokio::test]
async fn dry_runs_change_nothing_and_normalize_reports() {
    let db = TestDb::migrated().await;
    let before = scalar(&db, "SELECT count(*) FROM pg_class").await;
    for args in [
        vec!["partitions", "premake", "--months", "20", "--dry-run"],
        vec!["partitions", "retain", "--keep-months", "0", "--dry-run"],
        vec!["partitions", "archive", "--keep-months", "0", "--dry-run"],
        vec!["partitions", "migrate", "audit_logs", "--dry-run"],
    ] {
        let out = bisman(&args, &db.url);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    assert_eq!(scalar(&db, "SELECT count(*) FROM pg_class").await, before);
    let out = bisman(&["normalize", "reads"], &db.url);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("new JSONB writes are mirrored"),
        "{}",
        text(&out)
    );
    let out = bisman(&["normalize", "verify"], &db.url);
    assert!(out.status.success(), "{}", text(&out));
    let out = bisman(&["partitions", "premake", "--months", "20"], &db.url);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("created"), "{}", text(&out));
}
