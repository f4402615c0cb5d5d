//! The `bisman` binary end to end against a real PostgreSQL.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bisman_testkit::TestDb;

fn bisman(args: &[&str], database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bisman"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("BISMAN_LOG", "warn")
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

#[tokio::test]
async fn migrate_twice_and_status() {
    let db = TestDb::empty().await;
    let first = bisman(&["migrate"], &db.url);
    assert!(first.status.success(), "{}", text(&first));
    let all = bisman_db::Migrator::embedded();
    let expected = format!(
        "applied {} migration(s); database is at {:03}",
        all.migrations().len(),
        all.latest_version()
    );
    assert!(text(&first).contains(&expected), "{}", text(&first));
    let second = bisman(&["migrate"], &db.url);
    assert!(second.status.success());
    assert!(
        text(&second).contains("database is up to date"),
        "{}",
        text(&second)
    );
    let status = bisman(&["migrate", "status"], &db.url);
    assert!(status.status.success());
    let listing = String::from_utf8_lossy(&status.stdout);
    let applied = listing
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("applied"))
        .count();
    assert_eq!(applied, all.migrations().len(), "{listing}");
    assert!(
        listing.contains("012      p3_scaling_performance"),
        "{listing}"
    );
}

#[tokio::test]
async fn migrate_to_the_baseline_only() {
    let db = TestDb::empty().await;
    let out = bisman(&["migrate", "--target", "11"], &db.url);
    assert!(out.status.success(), "{}", text(&out));
    let status = bisman(&["migrate", "status"], &db.url);
    assert!(String::from_utf8_lossy(&status.stdout)
        .contains("012      p3_scaling_performance       pending"));
}

#[tokio::test]
async fn clear_errors_not_panics() {
    let unreachable = bisman(&["migrate"], "postgres://postgres@127.0.0.1:1/nowhere");
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        text(&unreachable).starts_with("error: connecting to PostgreSQL"),
        "{}",
        text(&unreachable)
    );
    assert!(!text(&unreachable).contains("panicked"));

    let garbage = bisman(&["migrate"], "not a url");
    assert_eq!(garbage.status.code(), Some(1));
    assert!(!text(&garbage).contains("panicked"));

    let db = TestDb::empty().await;
    bisman(&["migrate"], &db.url);
    sqlx::query("INSERT INTO bisman_schema_migrations (version, name, checksum, duration_ms) VALUES (40, 'newer', 'x', 1)")
        .execute(&db.pool)
        .await
        .unwrap();
    let refused = bisman(&["migrate"], &db.url);
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused)
        .contains("the database has migration 40 (newer), which this bisman binary does not know"));
    let status = bisman(&["migrate", "status"], &db.url);
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stdout).contains("UNKNOWN"));

    let bad_target = bisman(&["migrate", "--target", "abc"], &db.url);
    assert_eq!(bad_target.status.code(), Some(2), "clap rejects it");
}

#[tokio::test]
async fn serve_demo_seeds_serves_and_stops_on_sigterm() {
    let db = TestDb::empty().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    for round in 0..2 {
        let child = Command::new(env!("CARGO_BIN_EXE_bisman"))
            .args(["serve", "--demo", "--bind", &bind])
            .env("DATABASE_URL", &db.url)
            .env("BISMAN_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut up = false;
        for _ in 0..100 {
            if let Ok(mut s) = std::net::TcpStream::connect(&bind) {
                use std::io::{Read, Write};
                s.write_all(b"GET /readyz HTTP/1.0\r\n\r\n").unwrap();
                let mut body = String::new();
                s.read_to_string(&mut body).unwrap();
                assert!(body.starts_with("HTTP/1.0 200"), "{body}");
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        nix_kill(child.id());
        let out = child.wait_with_output().unwrap();
        assert!(up, "serve never answered: {}", text(&out));
        assert!(out.status.success(), "{}", text(&out));
        let printed = String::from_utf8_lossy(&out.stdout);
        let expect = if round == 0 {
            "demo tenant seeded"
        } else {
            "demo tenant already present"
        };
        assert!(printed.contains(expect), "{printed}");
        assert!(printed.contains("owner@demo.test"));
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        users,
        bisman_server::demo::DEMO_USERS.len() as i64,
        "seeded once"
    );
    let reads: i64 = sqlx::query_scalar("SELECT count(*) FROM message_reads")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(reads > 0, "the demo's JSONB receipts were normalised");
}

fn nix_kill(pid: u32) {
    // SIGTERM, as a service manager would send.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}
