//! Every lifecycle command paused at each of its named steps while four
//! sessions write to the month it works on (an insert, an update, a delete,
//! and the commit of a transaction opened before the command started), then
//! the exact check: the rows committed EXCEPT (table ∪ archives of dropped
//! months) and the reverse are both empty, at the step and at the end, and
//! no write silently missed a row that was there. RELIABILITY.md's "data
//! lifecycle" table lists these interleavings and what happens in each.

mod common;

use std::path::PathBuf;

use bisman_db::lifecycle::archive;
use bisman_db::lifecycle::premake::{premake, PremakeOptions};
use bisman_db::lifecycle::retain::{retain, RetainOptions};
use bisman_db::lifecycle::table_migration::{migrate, unswap, MigrateOptions};
use bisman_db::lifecycle::{registry, restore, steps, LockPolicy, NoProgress};
use bisman_db::normalize::{self, Kind, NormalizeOptions};
use bisman_db::partitions::Month;
use bisman_testkit::TestDb;
use common::interleave::{Harness, Op, Reached, Report, Subject};
use common::*;
use sqlx::PgPool;

const OLD: &str = "2020-01-01 00:00:00";

/// Rows per month in the scenarios (`BISMAN_LIFECYCLE_ROWS`, default 20;
/// `scripts/reliability-long.sh` runs them with 20,000).
fn rows() -> i32 {
    std::env::var("BISMAN_LIFECYCLE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

async fn events(pool: &PgPool, table: &str, at: &str, n: i32) {
    sqlx::query(&format!(
        "INSERT INTO {table} (tenant_id, event_type, occurred_at)
         SELECT $1, 'seed', $2::timestamptz + make_interval(secs => g * 60) FROM generate_series(1, $3) g"
    ))
    .bind(TENANT)
    .bind(at)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

/// Usage events in two old months of the partitioned table.
async fn old_months() -> TestDb {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    sqlx::query(
        "SELECT count(*) FROM bisman_ensure_partitions('client_usage_events', '2020-01-01', 2)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    events(
        &db.pool,
        "client_usage_events_partitioned",
        "2020-01-02 00:00+00",
        20,
    )
    .await;
    events(
        &db.pool,
        "client_usage_events_partitioned",
        "2020-02-02 00:00+00",
        20,
    )
    .await;
    db
}

fn retain_opts(dir: &std::path::Path) -> RetainOptions {
    RetainOptions {
        keep_months: Some(1),
        archive_dir: dir.to_path_buf(),
        no_archive: false,
        dry_run: false,
        locks: LockPolicy::default(),
    }
}

async fn roots(pool: &PgPool, name: &str) -> Vec<registry::ManagedTable> {
    registry::roots(pool, &[name.to_string()]).await.unwrap()
}

fn done<T, E: std::fmt::Display>(
    r: Result<T, E>,
    what: impl FnOnce(&T) -> String,
) -> Result<String, String> {
    r.map(|v| what(&v)).map_err(|e| e.to_string())
}

fn archive_op(pool: &PgPool, dir: &std::path::Path) -> Op {
    let (pool, dir) = (pool.clone(), dir.to_path_buf());
    Box::pin(async move {
        let r = roots(&pool, "client_usage_events").await;
        done(
            archive::archive(
                &pool,
                &r,
                Some(1),
                &dir,
                LockPolicy::default(),
                false,
                &NoProgress,
            )
            .await,
            |l| format!("{} lines", l.len()),
        )
    })
}

fn retain_op(pool: &PgPool, dir: &std::path::Path, base: &'static str) -> Op {
    let (pool, dir) = (pool.clone(), dir.to_path_buf());
    Box::pin(async move {
        let r = roots(&pool, base).await;
        done(
            retain(&pool, &r, &retain_opts(&dir), &NoProgress).await,
            |l| {
                l.iter()
                    .map(|l| format!("{} {}", l.action, l.partition))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        )
    })
}

fn finish(report: &Report) {
    eprintln!("{}", report.line());
    assert_ne!(report.reached, Reached::Never, "{}", report.line());
    report.assert_clean();
    assert!(report.op.is_ok(), "{}", report.line());
}

#[tokio::test]
async fn archive_at_every_step() {
    for step in [steps::ARCHIVE_SNAPSHOT, steps::ARCHIVE_VERIFIED] {
        let db = old_months().await;
        let dir = tempdir("il-archive");
        let mut h = Harness::install(
            &db.url,
            Subject::usage_events("client_usage_events_partitioned"),
            Some(&dir),
        )
        .await;
        let report = h.run(step, OLD, archive_op(&db.pool, &dir)).await;
        finish(&report);
        // The archive made before the step's writes must not let retain drop them.
        let after = retain_op(&db.pool, &dir, "client_usage_events").await;
        assert!(after.is_ok(), "{after:?}");
        assert_eq!(
            h.check_now().await,
            (0, 0),
            "{step}: retain after: {after:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn retain_at_every_step() {
    for step in [
        steps::RETAIN_ARCHIVED,
        steps::RETIRE_LOCKED,
        steps::RETIRE_CHECKED,
        steps::RETIRE_DROPPED,
    ] {
        let db = old_months().await;
        let dir = tempdir("il-retain");
        let mut h = Harness::install(
            &db.url,
            Subject::usage_events("client_usage_events_partitioned"),
            Some(&dir),
        )
        .await;
        let report = h
            .run(step, OLD, retain_op(&db.pool, &dir, "client_usage_events"))
            .await;
        finish(&report);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[tokio::test]
async fn drop_old_partitions_at_every_step() {
    for step in [
        steps::RETIRE_LOCKED,
        steps::RETIRE_CHECKED,
        steps::RETIRE_DROPPED,
    ] {
        let db = old_months().await;
        let dir = tempdir("il-dropold");
        archive_op(&db.pool, &dir).await.unwrap();
        let mut h = Harness::install(
            &db.url,
            Subject::usage_events("client_usage_events_partitioned"),
            Some(&dir),
        )
        .await;
        let pool = db.pool.clone();
        let op: Op = Box::pin(async move {
            let lines: Result<Vec<(String, String, String)>, _> = sqlx::query_as(
                "SELECT partition_name, action, reason FROM drop_old_partitions('client_usage_events', 1)",
            )
            .fetch_all(&pool)
            .await;
            done(lines, |l| format!("{l:?}"))
        });
        let report = h.run(step, OLD, op).await;
        finish(&report);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Rows of a month 14 ahead waiting in the default partition.
async fn waiting_rows() -> (TestDb, String) {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    let far = Month::current()
        .plus(14)
        .start()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    events(
        &db.pool,
        "client_usage_events_partitioned",
        &format!("{far}+00"),
        30,
    )
    .await;
    (db, far)
}

#[tokio::test]
async fn premake_at_every_step() {
    for step in [
        steps::MONTH_STAGED,
        steps::MONTH_LOCKED,
        steps::MONTH_ATTACHED,
    ] {
        let (db, far) = waiting_rows().await;
        let mut h = Harness::install(
            &db.url,
            Subject::usage_events("client_usage_events_partitioned"),
            None,
        )
        .await;
        let pool = db.pool.clone();
        let op: Op = Box::pin(async move {
            let r = roots(&pool, "client_usage_events").await;
            let opts = PremakeOptions {
                months: Some(14),
                ..Default::default()
            };
            done(premake(&pool, &r, &opts, &NoProgress).await, |m| {
                format!("{} months", m.len())
            })
        });
        let report = h.run(step, &far, op).await;
        finish(&report);
        assert_eq!(
            count(&db.pool, "client_usage_events_default").await,
            0,
            "{step}"
        );
    }
}

#[tokio::test]
async fn create_future_partitions_at_every_step() {
    for step in [
        steps::MONTH_STAGED,
        steps::MONTH_LOCKED,
        steps::MONTH_ATTACHED,
    ] {
        let (db, far) = waiting_rows().await;
        let mut h = Harness::install(
            &db.url,
            Subject::usage_events("client_usage_events_partitioned"),
            None,
        )
        .await;
        let pool = db.pool.clone();
        let op: Op = Box::pin(async move {
            let made: Result<Vec<(String, bool, i64)>, _> = sqlx::query_as(
                "SELECT partition_name, created, rows_moved FROM create_future_partitions('client_usage_events', 14)",
            )
            .fetch_all(&pool)
            .await;
            done(made, |m| format!("{} months", m.len()))
        });
        let report = h.run(step, &far, op).await;
        finish(&report);
        assert_eq!(
            count(&db.pool, "client_usage_events_default").await,
            0,
            "{step}"
        );
    }
}

#[tokio::test]
async fn restore_at_every_step() {
    for step in [
        steps::RESTORE_LOADED,
        steps::MONTH_STAGED,
        steps::MONTH_LOCKED,
        steps::MONTH_ATTACHED,
    ] {
        let db = old_months().await;
        let dir = tempdir("il-restore");
        let r = roots(&db.pool, "client_usage_events").await;
        let lines = retain(&db.pool, &r, &retain_opts(&dir), &NoProgress)
            .await
            .unwrap();
        let manifests: Vec<PathBuf> = lines
            .iter()
            .filter(|l| l.partition == "client_usage_events_p2020_01")
            .filter_map(|l| l.manifest.clone())
            .collect();
        assert_eq!(manifests.len(), 1, "{lines:?}");
        // Late rows of the dropped month wait in the default partition.
        events(
            &db.pool,
            "client_usage_events_partitioned",
            "2020-01-20 00:00+00",
            2,
        )
        .await;
        let mut h = Harness::install(
            &db.url,
            Subject::usage_events("client_usage_events_partitioned"),
            Some(&dir),
        )
        .await;
        let pool = db.pool.clone();
        let op: Op = Box::pin(async move {
            done(
                restore::restore(&pool, &manifests, LockPolicy::default(), &NoProgress).await,
                |r| format!("{} restored", r.len()),
            )
        });
        let report = h.run(step, OLD, op).await;
        finish(&report);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A flat table with rows two months back, being migrated.
async fn flat_table() -> (TestDb, String) {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    let month = Month::current()
        .plus(-2)
        .start()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    events(
        &db.pool,
        "client_usage_events",
        &format!("{month}+00"),
        rows() * 10,
    )
    .await;
    (db, month)
}

fn migrate_opts() -> MigrateOptions {
    MigrateOptions {
        // A few batches, whatever the size.
        batch_size: (i64::from(rows()) * 10 / 4).max(50),
        ..Default::default()
    }
}

#[tokio::test]
async fn migrate_at_every_step() {
    for step in [
        steps::MIGRATE_PREPARED,
        steps::MIGRATE_BATCH,
        steps::MIGRATE_CAUGHT_UP,
        steps::MIGRATE_VERIFIED,
        steps::SWAP_LOCKED,
    ] {
        let (db, month) = flat_table().await;
        let mut h =
            Harness::install(&db.url, Subject::usage_events("client_usage_events"), None).await;
        let pool = db.pool.clone();
        let op: Op = Box::pin(async move {
            done(
                migrate(&pool, "client_usage_events", &migrate_opts(), &NoProgress).await,
                |r| r.state.clone(),
            )
        });
        let report = h.run(step, &month, op).await;
        finish(&report);
        assert_eq!(report.op.as_deref(), Ok("swapped"), "{step}");
        // And back: the flat table has every row.
        let back = unswap(
            &db.pool,
            "client_usage_events",
            LockPolicy::default(),
            &NoProgress,
        )
        .await;
        assert!(back.is_ok(), "{step}: {back:?}");
        assert_eq!(h.check_now().await, (0, 0), "{step}: after unswap");
    }
}

#[tokio::test]
async fn unswap_at_its_step() {
    let (db, month) = flat_table().await;
    migrate(
        &db.pool,
        "client_usage_events",
        &migrate_opts(),
        &NoProgress,
    )
    .await
    .unwrap();
    let mut h = Harness::install(&db.url, Subject::usage_events("client_usage_events"), None).await;
    let pool = db.pool.clone();
    let op: Op = Box::pin(async move {
        done(
            unswap(
                &pool,
                "client_usage_events",
                LockPolicy::default(),
                &NoProgress,
            )
            .await,
            |r| format!("{} rows", r.rows),
        )
    });
    let report = h.run(steps::UNSWAP_LOCKED, &month, op).await;
    finish(&report);
}

#[tokio::test]
async fn normalize_at_every_step() {
    for step in [steps::NORMALIZE_MIRRORED, steps::NORMALIZE_BATCH] {
        let db = TestDb::migrated().await;
        seed_base(&db.pool).await;
        sqlx::raw_sql(&format!(
            r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, reactions, "createdAt")
               SELECT 'n' || lpad(g::text, 3, '0'), '{TENANT}', 'th1', 1, 'hi',
                      '[{{"userId": 1, "emoji": "👍"}}, {{"userId": 2, "emoji": "🎉"}}]', timestamp '2026-01-01' + make_interval(hours => g)
               FROM generate_series(1, 40) g;
               CREATE FUNCTION harness_pause_backfill() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                   IF current_setting('application_name') = 'bisman' THEN
                       PERFORM bisman_lifecycle_step('{}');
                   END IF;
                   RETURN NEW;
               END $$;
               CREATE TRIGGER harness_pause_backfill BEFORE INSERT ON message_reactions
                   FOR EACH ROW EXECUTE FUNCTION harness_pause_backfill();"#,
            steps::NORMALIZE_BATCH
        ))
        .execute(&db.pool)
        .await
        .unwrap();
        let mut subject = Subject::messages("thread_messages");
        subject.set = "reactions = '[]'::jsonb".into();
        subject.insert = format!(
            "(id, tenant_id, \"threadId\", \"senderId\", content, reactions, \"createdAt\")
             VALUES ('w' || md5(random()::text), '{TENANT}', 'th1', 1, 'hi', '[{{\"userId\": 3, \"emoji\": \"🔥\"}}]', $1::timestamp)"
        );
        let mut h = Harness::install(&db.url, subject, None).await;
        let pool = db.pool.clone();
        let op: Op = Box::pin(async move {
            let opts = NormalizeOptions {
                batch_size: 1000,
                ..Default::default()
            };
            done(
                normalize::normalize(&pool, Kind::Reactions, &opts, &NoProgress).await,
                |r| format!("{} rows", r.rows_inserted),
            )
        });
        let report = h.run(step, "2026-01-01 00:00:00", op).await;
        finish(&report);
        let verified = normalize::verify(&db.pool, Kind::Reactions, 1000, 10, &NoProgress)
            .await
            .unwrap();
        assert!(verified.is_clean(), "{step}: {verified:?}");
    }
}
