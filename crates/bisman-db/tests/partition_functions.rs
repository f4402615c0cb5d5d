//! The SQL partition functions: names and bounds, time zones, idempotency,
//! bad input, default partitions, and archive-first retention.

mod common;

use bisman_testkit::TestDb;
use common::*;
use sqlx::{PgPool, Row};

async fn ensure(
    pool: &PgPool,
    table: &str,
    from: &str,
    months: i32,
) -> Vec<(String, String, bool, i64)> {
    sqlx::query(
        "SELECT table_name, partition_name, created, rows_moved FROM bisman_ensure_partitions($1, $2::date, $3)",
    )
    .bind(table)
    .bind(from)
    .bind(months)
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

async fn bound(pool: &PgPool, partition: &str) -> String {
    // Read back in UTC whatever the session's zone.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET TimeZone = 'UTC'")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = $1")
        .bind(partition)
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn names_and_bounds_cross_the_year_boundary() {
    let db = TestDb::migrated().await;
    let made = ensure(&db.pool, "thread_messages", "2030-11-17", 4).await;
    let names: Vec<&str> = made
        .iter()
        .filter(|m| m.0 == "thread_messages")
        .map(|m| m.1.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "thread_messages_p2030_11",
            "thread_messages_p2030_12",
            "thread_messages_p2031_01",
            "thread_messages_p2031_02"
        ]
    );
    assert!(made.iter().all(|m| m.2), "all new");
    assert_eq!(made.len(), 12, "messages, reads and reactions");
    assert_eq!(
        bound(&db.pool, "thread_messages_p2030_12").await,
        "FOR VALUES FROM ('2030-12-01 00:00:00') TO ('2031-01-01 00:00:00')"
    );
    assert_eq!(
        bound(&db.pool, "message_reads_p2031_01").await,
        "FOR VALUES FROM ('2031-01-01 00:00:00') TO ('2031-02-01 00:00:00')"
    );
}

#[tokio::test]
async fn months_are_utc_months_in_any_session_time_zone() {
    let db = TestDb::migrated().await;
    let mut conn = db.pool.acquire().await.unwrap();
    // UTC+14: the local date is already tomorrow, often next month.
    sqlx::query("SET TimeZone = 'Pacific/Kiritimati'")
        .execute(&mut *conn)
        .await
        .unwrap();
    let month: chrono::NaiveDate =
        sqlx::query_scalar("SELECT bisman_utc_month('2030-12-31 23:00:00+00')")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(month.to_string(), "2030-12-01");
    let made: Vec<String> = sqlx::query_scalar(
        "SELECT partition_name FROM bisman_ensure_partitions('client_usage_events', '2030-12-01', 2)",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(
        made,
        [
            "client_usage_events_p2030_12",
            "client_usage_events_p2031_01"
        ]
    );
    // timestamptz bounds are UTC midnights, not Kiritimati ones.
    assert_eq!(
        bound(&db.pool, "client_usage_events_p2031_01").await,
        "FOR VALUES FROM ('2031-01-01 00:00:00+00') TO ('2031-02-01 00:00:00+00')"
    );
    // 23:30 UTC on 31 January is 1 February in Kiritimati: it belongs to January.
    sqlx::query(
        "INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
         VALUES ($1, 'click', '2031-01-31 23:30:00+00')",
    )
    .bind(TENANT)
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    assert_eq!(count(&db.pool, "client_usage_events_p2031_01").await, 1);
}

#[tokio::test]
async fn premaking_is_idempotent() {
    let db = TestDb::migrated().await;
    let before = partitions(&db.pool, "thread_messages_partitioned").await;
    let first: Vec<bool> =
        sqlx::query_scalar("SELECT created FROM create_future_partitions('thread_messages', 14)")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let second: Vec<bool> =
        sqlx::query_scalar("SELECT created FROM create_future_partitions('thread_messages', 14)")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(first.len(), 15 * 3);
    assert_eq!(
        first.iter().filter(|c| **c).count(),
        3 * 3,
        "months 12–14 ahead were new"
    );
    assert!(second.iter().all(|c| !c), "nothing new the second time");
    let after = partitions(&db.pool, "thread_messages_partitioned").await;
    assert_eq!(after.len(), before.len() + 3);
}

#[tokio::test]
async fn unknown_tables_and_injection_are_rejected_without_side_effects() {
    let db = TestDb::migrated().await;
    let tables_before: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    for bad in [
        "thread_messages; DROP TABLE users",
        "users",
        "thread_messages_partitioned",
        "message_reads",
        "",
        "\"thread_messages\"",
        "thread_messages' OR '1'='1",
    ] {
        for sql in [
            "SELECT * FROM create_future_partitions($1, 3)",
            "SELECT * FROM drop_old_partitions($1, 0)",
            "SELECT * FROM drop_old_partitions($1, 0, true)",
        ] {
            let err = sqlx::query(sql)
                .bind(bad)
                .fetch_all(&db.pool)
                .await
                .unwrap_err();
            let db_err = err.as_database_error().expect("a database error");
            assert_eq!(db_err.code().as_deref(), Some("22023"), "{bad}: {db_err}");
        }
    }
    let null_err = sqlx::query("SELECT * FROM create_future_partitions(NULL, 3)")
        .fetch_all(&db.pool)
        .await
        .unwrap_err();
    assert!(
        null_err
            .to_string()
            .contains("unknown partitioned table NULL"),
        "{null_err}"
    );
    for sql in [
        "SELECT * FROM create_future_partitions('thread_messages', -1)",
        "SELECT * FROM create_future_partitions('thread_messages', 100000)",
        "SELECT * FROM drop_old_partitions('thread_messages', -5)",
        "SELECT * FROM drop_old_partitions('thread_messages', NULL)",
    ] {
        let err = sqlx::query(sql).fetch_all(&db.pool).await.unwrap_err();
        assert!(err.to_string().contains("must be between"), "{sql}: {err}");
    }
    assert!(exists(&db.pool, "users").await);
    let tables_after: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(tables_before, tables_after, "nothing created or dropped");
}

#[tokio::test]
async fn rows_without_a_month_wait_in_the_default_partition_and_move_when_it_is_made() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    message(
        &db.pool,
        "thread_messages_partitioned",
        "far",
        "2040-06-15",
        "[]",
        "[]",
    )
    .await;
    let report = sqlx::query("SELECT table_name, default_partition, row_count, oldest::text FROM check_default_partitions()")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let row = report
        .iter()
        .find(|r| r.get::<String, _>(0) == "thread_messages")
        .unwrap();
    assert_eq!(row.get::<String, _>(1), "thread_messages_default");
    assert_eq!(row.get::<i64, _>(2), 1);
    assert_eq!(row.get::<String, _>(3), "2040-06-15 00:00:00");

    let made = ensure(&db.pool, "thread_messages", "2040-06-01", 1).await;
    assert!(made.contains(&(
        "thread_messages".into(),
        "thread_messages_p2040_06".into(),
        true,
        1
    )));
    assert_eq!(count(&db.pool, "thread_messages_default").await, 0);
    assert_eq!(count(&db.pool, "thread_messages_p2040_06").await, 1);
}

/// Messages partitioned with their reads pointing at them: the state after
/// `bisman partitions migrate thread_messages` swaps the tables.
async fn reads_follow_the_partitioned_table(pool: &PgPool) {
    sqlx::raw_sql(
        r#"ALTER TABLE message_reads DROP CONSTRAINT message_reads_message_fkey;
           ALTER TABLE message_reads ADD CONSTRAINT message_reads_message_fkey
               FOREIGN KEY (message_id, message_created_at, tenant_id)
               REFERENCES thread_messages_partitioned (id, "createdAt", tenant_id) ON DELETE CASCADE;"#,
    )
    .execute(pool)
    .await
    .unwrap();
}

async fn read(pool: &PgPool, message: &str, created_at: &str) {
    sqlx::query(
        "INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id)
         VALUES ($1, $2, $3::timestamp, 'th1', 7)",
    )
    .bind(TENANT)
    .bind(message)
    .bind(created_at)
    .execute(pool)
    .await
    .unwrap();
}

async fn drop_old(pool: &PgPool, keep: i32, force: bool) -> Vec<(String, String, String, String)> {
    sqlx::query("SELECT table_name, partition_name, action, reason FROM drop_old_partitions('thread_messages', $1, $2)")
        .bind(keep)
        .bind(force)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Records an archive of `partition` in the ledger: holding exactly its
/// rows now (`exact`), or 5 rows of other content.
async fn record_archive(pool: &PgPool, base: &str, partition: &str, exact: bool) {
    sqlx::query(
        "INSERT INTO bisman_partition_archives
             (base_table, partition_name, range_start, range_end, row_count, file_name, file_sha256, format,
              content_checksum, verified_at)
         SELECT $1, $2, '2020-01-01', '2020-02-01', CASE WHEN $3 THEN d.row_count ELSE 5 END, $2 || '.csv.gz',
                repeat('a', 64), 'csv+gzip', CASE WHEN $3 THEN d.checksum ELSE 'h2:0:0' END, now()
         FROM bisman_partitioned_tables b, bisman_rows_digest(b.parent_table, $2) d WHERE b.base_table = $1",
    )
    .bind(base)
    .bind(partition)
    .bind(exact)
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn retention_drops_only_empty_or_archived_months_children_first() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    reads_follow_the_partitioned_table(&db.pool).await;
    ensure(&db.pool, "thread_messages", "2020-01-01", 2).await;
    message(
        &db.pool,
        "thread_messages_partitioned",
        "old",
        "2020-01-10",
        "[]",
        "[]",
    )
    .await;
    read(&db.pool, "old", "2020-01-10").await;

    // 2020-02 is empty and goes; 2020-01 holds rows nobody archived and stays.
    let report = drop_old(&db.pool, 1, false).await;
    let dropped: Vec<&str> = report
        .iter()
        .filter(|r| r.2 == "dropped")
        .map(|r| r.1.as_str())
        .collect();
    assert!(
        dropped.contains(&"thread_messages_p2020_02")
            && dropped.contains(&"message_reads_p2020_02"),
        "{report:?}"
    );
    let skipped: Vec<&(String, String, String, String)> =
        report.iter().filter(|r| r.2 == "skipped").collect();
    assert!(
        skipped
            .iter()
            .any(|r| r.1 == "thread_messages_p2020_01" && r.3.starts_with("not archived")),
        "{report:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|r| r.1 == "message_reads_p2020_01" && r.3.starts_with("not archived")),
        "{report:?}"
    );
    assert!(exists(&db.pool, "thread_messages_p2020_01").await);

    // The messages archived but not their reads: still kept, and said why.
    record_archive(
        &db.pool,
        "thread_messages",
        "thread_messages_p2020_01",
        true,
    )
    .await;
    let report = drop_old(&db.pool, 1, false).await;
    assert!(report.iter().all(|r| r.2 == "skipped"), "{report:?}");
    assert!(report
        .iter()
        .any(|r| r.1 == "thread_messages_p2020_01" && r.3.contains("kept with its month")));

    // An archive whose content is not the partition's does not count.
    record_archive(&db.pool, "message_reads", "message_reads_p2020_01", false).await;
    let report = drop_old(&db.pool, 1, false).await;
    assert!(
        report.iter().any(|r| r.1 == "message_reads_p2020_01"
            && r.3.contains("changed since its archive")
            && r.3.contains("5 rows then, 1 now")),
        "{report:?}"
    );

    // Both archived and verified: reads first, then the messages.
    record_archive(&db.pool, "message_reads", "message_reads_p2020_01", true).await;
    let report = drop_old(&db.pool, 1, false).await;
    let order: Vec<&str> = report.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(
        order,
        ["message_reads_p2020_01", "thread_messages_p2020_01"],
        "{report:?}"
    );
    assert!(report
        .iter()
        .all(|r| r.2 == "dropped" && r.3 == "archived and verified"));
    assert!(!exists(&db.pool, "thread_messages_p2020_01").await);
    let marked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bisman_partition_archives WHERE dropped_at IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(marked >= 2);
    // Running again finds nothing more to do.
    assert!(drop_old(&db.pool, 1, false).await.is_empty());
}

#[tokio::test]
async fn retention_without_archive_only_when_told() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    ensure(&db.pool, "thread_messages", "2020-01-01", 1).await;
    message(
        &db.pool,
        "thread_messages_partitioned",
        "old",
        "2020-01-10",
        "[]",
        "[]",
    )
    .await;
    let kept = drop_old(&db.pool, 1, false).await;
    assert!(
        kept.iter()
            .any(|r| r.1 == "thread_messages_p2020_01" && r.2 == "skipped"),
        "{kept:?}"
    );
    let forced = drop_old(&db.pool, 1, true).await;
    let row = forced
        .iter()
        .find(|r| r.1 == "thread_messages_p2020_01")
        .unwrap();
    assert_eq!(row.2, "dropped");
    assert!(
        row.3.starts_with("dropped without archive as asked"),
        "{}",
        row.3
    );
    // Reads still point at the flat table, so their month is not touched.
    assert!(exists(&db.pool, "message_reads_p2020_01").await);
}
