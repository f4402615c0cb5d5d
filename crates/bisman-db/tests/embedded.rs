//! The embedded PostgreSQL: started from the machine's binaries, reused on
//! the next run, stopped cleanly; with pg_stat_statements preloaded so that
//! v_slow_queries has data.

use bisman_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use bisman_db::Migrator;
use sqlx::Row;

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn starts_reuses_and_stops_with_pg_stat_statements() {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "bisman-embedded-test-{}",
        uuid::Uuid::new_v4().simple()
    )));
    let opts = EmbeddedOptions {
        data_dir: dir.0.clone(),
        port: None,
    };

    let server = EmbeddedPostgres::start(&opts).await.expect("start");
    server.ensure_database("bisman").await.unwrap();
    server.ensure_database("bisman").await.unwrap();
    let pool = bisman_db::connect(&server.url("bisman"), 2).await.unwrap();
    Migrator::embedded()
        .run(&pool, None, &|_| {})
        .await
        .unwrap();

    // A second start while it runs reuses it and does not own it.
    let again = EmbeddedPostgres::start(&opts).await.unwrap();
    assert_eq!(again.port(), server.port());
    again.stop().await.unwrap();
    assert!(
        sqlx::query("SELECT 1").execute(&pool).await.is_ok(),
        "still running after the reuser stopped"
    );

    // pg_stat_statements is loaded: the slow-query view sees a slow statement.
    let problem: Option<String> = sqlx::query_scalar("SELECT bisman_stat_statements_problem()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(problem, None);
    let taken: i32 = sqlx::query_scalar("SELECT snapshot_pg_stat_statements()")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(taken > 0);
    sqlx::query("SELECT pg_sleep(0.15) /* bisman slow-query probe */")
        .execute(&pool)
        .await
        .unwrap();
    let slow = sqlx::query("SELECT query, calls, mean_ms, source FROM v_slow_queries")
        .fetch_all(&pool)
        .await
        .unwrap();
    let probe = slow
        .iter()
        .find(|r| r.get::<String, _>("query").contains("pg_sleep"))
        .expect("the probe is listed");
    assert_eq!(probe.get::<i64, _>("calls"), 1);
    assert_eq!(probe.get::<String, _>("source"), "snapshot difference");
    sqlx::query("CREATE TABLE kept (x int)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let pgdata = server.pgdata().to_path_buf();
    server.stop().await.unwrap();
    assert!(!pgdata.join("postmaster.pid").exists(), "stopped cleanly");

    // The next run reuses the data folder.
    let server = EmbeddedPostgres::start(&opts).await.unwrap();
    let pool = bisman_db::connect(&server.url("bisman"), 1).await.unwrap();
    let kept: bool = sqlx::query_scalar("SELECT to_regclass('kept') IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(kept);
    pool.close().await;
    server.stop().await.unwrap();
}
