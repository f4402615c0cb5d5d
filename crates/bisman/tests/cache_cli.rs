//! `bisman cache stats` and `bisman cache invalidate` against a running
//! `bisman serve` on real PostgreSQL and Redis.

use std::process::{Command, Output};

use bisman_testkit::{redis_prefix, redis_url, ServeProcess, TestDb};
use serde_json::Value;

fn cache_cmd(args: &[&str], db: &TestDb, prefix: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bisman"))
        .arg("cache")
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis_url())
        .env("BISMAN_CACHE_PREFIX", prefix)
        .env("BISMAN_LOG", "warn")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_from_a_running_service_and_a_manual_invalidation() {
    let db = TestDb::migrated().await;
    bisman_server::demo::seed(&db.pool).await.unwrap();
    let prefix = redis_prefix();
    let redis = redis_url();
    let serve = ServeProcess::start(
        env!("CARGO_BIN_EXE_bisman"),
        &[
            ("DATABASE_URL", &db.url),
            ("REDIS_URL", &redis),
            ("BISMAN_CACHE_PREFIX", &prefix),
        ],
    );
    let staff = serve.login("staff@demo.test", bisman_server::demo::DEMO_PASSWORD);
    let check = "/api/v1/permissions/check?module=expenses&page=submit&action=create";
    for _ in 0..5 {
        let (status, body) = serve.call("GET", check, Some(&staff), None);
        assert_eq!((status, &body["allowed"]), (200, &Value::Bool(true)));
    }

    let base = format!("http://{}", serve.addr());
    let out = cache_cmd(&["stats", "--from", &base], &db, &prefix);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    for want in [
        "cache mode        redis",
        "keyspace_hits",
        "live near-caches  1",
        "user_permissions",
        "sessions",
    ] {
        assert!(printed.contains(want), "{want} in:\n{printed}");
    }
    let out = cache_cmd(&["stats", "--from", &base, "--json"], &db, &prefix);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["services_read"], 1);
    assert!(
        report["counters"]["user_permissions"]["l1"]["hit"]
            .as_u64()
            .unwrap()
            > 0,
        "{report}"
    );

    // Take the staff member's roles away by SQL, then tell the caches.
    let user: i32 = sqlx::query_scalar("SELECT id FROM users WHERE email = 'staff@demo.test'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(user)
        .execute(&db.pool)
        .await
        .unwrap();
    let (_, body) = serve.call("GET", check, Some(&staff), None);
    assert_eq!(
        body["allowed"],
        Value::Bool(true),
        "still cached: the SQL change alone is not seen"
    );
    let out = cache_cmd(
        &["invalidate", "USER_PERMISSIONS_CHANGED", &user.to_string()],
        &db,
        &prefix,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("1 instance(s) acknowledged"),
        "{}",
        text(&out)
    );
    let (_, body) = serve.call("GET", check, Some(&staff), None);
    assert_eq!(
        body["allowed"],
        Value::Bool(false),
        "denied once the command returned"
    );

    let bad = cache_cmd(&["invalidate", "NOT_AN_EVENT", "1"], &db, &prefix);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad).contains("USER_PERMISSIONS_CHANGED"),
        "{}",
        text(&bad)
    );
    let unreachable = cache_cmd(&["stats", "--from", "http://127.0.0.1:1"], &db, &prefix);
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(!text(&unreachable).contains("panicked"));
    assert!(serve.stop().success());
}
