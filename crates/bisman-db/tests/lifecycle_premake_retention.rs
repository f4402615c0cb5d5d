//! Premake and retention in Rust, on a server whose time zone is not UTC:
//! months crossing a year boundary, rows waiting in default partitions moved
//! into their months (also a month table an interrupted run of an older
//! version left detached), archive → drop → restore.

mod common;

use bisman_db::lifecycle::premake::{premake, PremakeOptions};
use bisman_db::lifecycle::retain::{retain, RetainOptions};
use bisman_db::lifecycle::{registry, restore, LockPolicy, NoProgress};
use bisman_db::partitions::Month;
use bisman_testkit::TestDb;
use common::*;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// A pool whose sessions run in UTC+14 (sqlx asks for UTC at connect time,
/// so the zone is set after connecting, as an application might).
async fn kiritimati(db: &TestDb) -> PgPool {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("SET TimeZone = 'Pacific/Kiritimati'")
                    .execute(conn)
                    .await
                    .map(|_| ())
            })
        })
        .connect(&db.url)
        .await
        .unwrap();
    let tz: String = sqlx::query_scalar("SHOW TimeZone")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tz, "Pacific/Kiritimati");
    pool
}

async fn events(pool: &PgPool, at: &str, n: i32) {
    sqlx::query(
        "INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
         SELECT $1, 'view', $2::timestamptz FROM generate_series(1, $3)",
    )
    .bind(TENANT)
    .bind(at)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

fn opts(months: i32) -> PremakeOptions {
    PremakeOptions {
        months: Some(months),
        ..Default::default()
    }
}

#[tokio::test]
async fn premake_crosses_the_year_and_moves_default_rows() {
    let db = TestDb::migrated().await;
    let pool = kiritimati(&db).await;
    seed_base(&pool).await;
    let far = Month::current().plus(13);
    let start = far.start().format("%Y-%m-%d %H:%M:%S").to_string();
    let last_second = (far.end() - chrono::Duration::seconds(1))
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    // 23:59:59 UTC on the last day is already next month in Kiritimati.
    events(&pool, &format!("{start}+00"), 1).await;
    events(&pool, &format!("{last_second}+00"), 3).await;
    events(&pool, &format!("{} 12:00+00", far.first_day()), 250).await;
    let outside = far.plus(1).first_day();
    events(&pool, &format!("{outside} 00:00:00+00"), 2).await;
    for i in 0..150 {
        message(
            &pool,
            "thread_messages_partitioned",
            &format!("f{i}"),
            &start,
            "[]",
            "[]",
        )
        .await;
    }
    assert_eq!(count(&pool, "client_usage_events_default").await, 256);

    let roots = registry::roots(&pool, &[]).await.unwrap();
    let made = premake(&pool, &roots, &opts(13), &NoProgress)
        .await
        .unwrap();
    let line = |p: &str| made.iter().find(|l| l.partition_name == p).cloned();
    let cue = line(&far.partition_name("client_usage_events")).unwrap();
    assert!(cue.created);
    assert_eq!(cue.rows_moved, 254, "{made:?}");
    assert_eq!(
        line(&far.partition_name("thread_messages"))
            .unwrap()
            .rows_moved,
        150
    );
    assert!(line(&far.partition_name("message_reads")).unwrap().created);
    assert_eq!(
        count(&pool, &far.partition_name("client_usage_events")).await,
        254
    );
    assert_eq!(
        count(&pool, "client_usage_events_default").await,
        2,
        "only the month after the window waits"
    );
    // Fourteen months always span a new year.
    let names: Vec<String> = made
        .iter()
        .filter(|l| l.table_name == "audit_logs")
        .map(|l| l.partition_name.clone())
        .collect();
    assert_eq!(names.len(), 14);
    let years: std::collections::BTreeSet<&str> = names.iter().map(|n| &n[12..16]).collect();
    assert!(years.len() >= 2, "{names:?}");

    let again = premake(&pool, &roots, &opts(13), &NoProgress)
        .await
        .unwrap();
    assert!(again.iter().all(|l| !l.created && l.rows_moved == 0));
}

#[tokio::test]
async fn premake_resumes_a_month_left_detached_by_a_crash() {
    let db = TestDb::migrated().await;
    let pool = kiritimati(&db).await;
    seed_base(&pool).await;
    let far = Month::current().plus(13);
    events(&pool, &format!("{} 08:00+00", far.first_day()), 300).await;
    let part = far.partition_name("client_usage_events");
    // What a crash after two committed batches leaves behind.
    sqlx::raw_sql(&format!(
        "CREATE TABLE {part} (LIKE client_usage_events_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
         WITH moved AS (DELETE FROM client_usage_events_default WHERE ctid IN
             (SELECT ctid FROM client_usage_events_default LIMIT 200) RETURNING *)
         INSERT INTO {part} SELECT * FROM moved;"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let roots = registry::roots(&pool, &["client_usage_events".into()])
        .await
        .unwrap();
    let made = premake(&pool, &roots, &opts(13), &NoProgress)
        .await
        .unwrap();
    let line = made.iter().find(|l| l.partition_name == part).unwrap();
    assert!(line.created);
    assert_eq!(line.rows_moved, 100);
    assert_eq!(count(&pool, &part).await, 300);
    assert_eq!(count(&pool, "client_usage_events_default").await, 0);
    assert!(partitions(&pool, "client_usage_events_partitioned")
        .await
        .contains(&part));
}

#[tokio::test]
async fn retention_archives_drops_and_restores_across_a_year_boundary() {
    let db = TestDb::migrated().await;
    let pool = kiritimati(&db).await;
    seed_base(&pool).await;
    sqlx::query(
        "SELECT count(*) FROM bisman_ensure_partitions('client_usage_events', '2020-12-01', 2)",
    )
    .execute(&pool)
    .await
    .unwrap();
    events(&pool, "2020-12-31 23:30:00+00", 40).await;
    events(&pool, "2021-01-01 00:00:00+00", 60).await;
    sqlx::raw_sql(
        "CREATE TABLE snapshot AS SELECT * FROM client_usage_events_partitioned
         WHERE occurred_at < '2021-02-01 00:00:00+00'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(count(&pool, "client_usage_events_p2020_12").await, 40);

    let dir = tempdir("retention");
    let roots = registry::roots(&pool, &["client_usage_events".into()])
        .await
        .unwrap();
    let mut o = RetainOptions {
        keep_months: None,
        archive_dir: dir.clone(),
        no_archive: false,
        dry_run: true,
        locks: LockPolicy::default(),
    };
    let plan = retain(&pool, &roots, &o, &NoProgress).await.unwrap();
    assert!(plan
        .iter()
        .any(|l| l.partition == "client_usage_events_p2020_12"
            && l.action == "would archive and drop"));
    assert!(
        exists(&pool, "client_usage_events_p2020_12").await,
        "dry run"
    );
    assert_eq!(std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0), 0);

    o.dry_run = false;
    let done = retain(&pool, &roots, &o, &NoProgress).await.unwrap();
    for p in [
        "client_usage_events_p2020_12",
        "client_usage_events_p2021_01",
    ] {
        let l = done.iter().find(|l| l.partition == p).unwrap();
        assert_eq!(l.action, "dropped", "{done:?}");
        assert!(l.manifest.as_ref().unwrap().exists());
        assert!(!exists(&pool, p).await);
    }
    let verified: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bisman_partition_archives
         WHERE verified_at IS NOT NULL AND dropped_at IS NOT NULL AND format = 'csv+gzip'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(verified, 2);

    let manifests: Vec<_> = done.iter().filter_map(|l| l.manifest.clone()).collect();
    let back = restore::restore(&pool, &manifests, LockPolicy::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(back.iter().map(|r| r.rows).sum::<i64>(), 100);
    let differ: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM (SELECT * FROM snapshot EXCEPT
                 SELECT * FROM client_usage_events_partitioned WHERE occurred_at < '2021-02-01 00:00:00+00') a)
              + (SELECT count(*) FROM (SELECT * FROM client_usage_events_partitioned
                 WHERE occurred_at < '2021-02-01 00:00:00+00' EXCEPT SELECT * FROM snapshot) b)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(differ, 0);
    assert_eq!(count(&pool, "client_usage_events_p2020_12").await, 40);
    let _ = std::fs::remove_dir_all(&dir);
}
