//! The data lifecycle with a writer beside it: each defect the
//! data-lifecycle review found, reproduced as the scenario that showed it.
//! Nothing committed may be lost, nothing may stay invisible, and no
//! maintenance statement may rely on the pool's statement timeout.

mod common;

use std::path::Path;
use std::time::Duration;

use bisman_db::lifecycle::archive;
use bisman_db::lifecycle::premake::{premake, PremakeOptions};
use bisman_db::lifecycle::retain::{retain, RetainOptions};
use bisman_db::lifecycle::table_migration::{migrate, unswap, MigrateOptions};
use bisman_db::lifecycle::{registry, restore, status, steps, LockPolicy, NoProgress};
use bisman_db::normalize::{self, Kind, NormalizeOptions};
use bisman_db::partitions::Month;
use bisman_testkit::TestDb;
use common::interleave::{side_pool, Harness, Pauses, Reached, Subject};
use common::*;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection, PgPool};

async fn events(pool: &PgPool, at: &str, n: i32) {
    sqlx::query(
        "INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
         SELECT $1, 'view', $2::timestamptz + make_interval(mins => g) FROM generate_series(1, $3) g",
    )
    .bind(TENANT)
    .bind(at)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

async fn ensure(pool: &PgPool, table: &str, from: &str, months: i32) {
    sqlx::query("SELECT count(*) FROM bisman_ensure_partitions($1, $2::date, $3)")
        .bind(table)
        .bind(from)
        .bind(months)
        .execute(pool)
        .await
        .unwrap();
}

fn retain_opts(dir: &Path, keep: i32) -> RetainOptions {
    RetainOptions {
        keep_months: Some(keep),
        archive_dir: dir.to_path_buf(),
        no_archive: false,
        dry_run: false,
        locks: LockPolicy::default(),
    }
}

async fn roots(pool: &PgPool, name: &str) -> Vec<registry::ManagedTable> {
    registry::roots(pool, &[name.to_string()]).await.unwrap()
}

async fn scalar_i64(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn side(url: &str) -> PgConnection {
    let opts: PgConnectOptions = url.parse().unwrap();
    opts.application_name("harness-side")
        .connect()
        .await
        .unwrap()
}

/// Reproduced case 1: a row inserted into an old month by a transaction
/// still open while `drop_old_partitions` runs (the function checked the
/// month empty, waited for the writer's lock, then dropped it).
#[tokio::test]
async fn case_1_a_row_committed_while_drop_old_partitions_runs_is_kept() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    ensure(&db.pool, "client_usage_events", "2020-03-01", 1).await;
    let mut writer = side(&db.url).await;
    sqlx::raw_sql(&format!(
        "BEGIN; INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
                VALUES ('{TENANT}', 'in flight', '2020-03-15 12:00+00');"
    ))
    .execute(&mut writer)
    .await
    .unwrap();
    let mut pauses = Pauses::install(&db.url).await;
    let pool = db.pool.clone();
    let dropping = tokio::spawn(async move {
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT partition_name, action, reason FROM drop_old_partitions('client_usage_events', 2)",
        )
        .fetch_all(&pool)
        .await
    });
    pauses.until_op_blocked().await;
    sqlx::raw_sql("COMMIT").execute(&mut writer).await.unwrap();
    let lines = dropping.await.unwrap().unwrap();
    let row = scalar_i64(
        &db.pool,
        "SELECT count(*) FROM client_usage_events_partitioned WHERE event_type = 'in flight'",
    )
    .await;
    assert_eq!(row, 1, "the committed row was dropped: {lines:?}");
    let month = lines
        .iter()
        .find(|l| l.0 == "client_usage_events_p2020_03")
        .expect("the month is reported");
    assert_eq!(month.1, "skipped", "{lines:?}");
    assert!(month.2.starts_with("not archived"), "{lines:?}");
}

/// Reproduced case 2: a month updated, a row deleted and one inserted after
/// its archive (the count unchanged): retain must not drop it on the stale
/// archive. It archives it again and drops it on the new archive, and says so.
#[tokio::test]
async fn case_2_a_month_changed_after_its_archive_is_archived_again() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    ensure(&db.pool, "client_usage_events", "2020-05-01", 1).await;
    events(&db.pool, "2020-05-02 00:00+00", 100).await;
    let dir = tempdir("case2");
    let r = roots(&db.pool, "client_usage_events").await;
    archive::archive(
        &db.pool,
        &r,
        Some(1),
        &dir,
        LockPolicy::default(),
        false,
        &NoProgress,
    )
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "UPDATE client_usage_events_partitioned SET event_type = 'changed after the archive'
             WHERE id = (SELECT min(id) FROM client_usage_events_p2020_05);
         DELETE FROM client_usage_events_partitioned WHERE id = (SELECT max(id) FROM client_usage_events_p2020_05);
         INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
             VALUES ('{TENANT}', 'added after the archive', '2020-05-20 00:00+00');"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        count(&db.pool, "client_usage_events_p2020_05").await,
        100,
        "same count"
    );
    let mut check = Harness::install(
        &db.url,
        Subject::usage_events("client_usage_events_partitioned"),
        Some(&dir),
    )
    .await;
    let lines = retain(&db.pool, &r, &retain_opts(&dir, 1), &NoProgress)
        .await
        .unwrap();
    let (lost, phantom) = check.check_now().await;
    assert_eq!((lost, phantom), (0, 0), "rows lost: {lines:?}");
    let line = lines
        .iter()
        .find(|l| l.partition == "client_usage_events_p2020_05")
        .unwrap();
    assert_eq!(line.action, "dropped", "{lines:?}");
    assert!(line.reason.contains("archived again"), "{lines:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 3: restoring a month of messages whose late rows (and their reads
/// and reactions) wait in the default partitions keeps the reads and
/// reactions (they used to be deleted by the cascade of the messages'
/// move out of the default partition).
#[tokio::test]
async fn restore_keeps_reads_and_reactions_waiting_in_default_partitions() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    migrate(
        &db.pool,
        "thread_messages",
        &MigrateOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    ensure(&db.pool, "thread_messages", "2021-03-01", 1).await;
    sqlx::raw_sql(&format!(
        r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "createdAt")
           SELECT 'old' || g, '{TENANT}', 'th1', 1, 'old', timestamp '2021-03-01' + make_interval(hours => g)
           FROM generate_series(1, 20) g;
           INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id)
           SELECT tenant_id, id, "createdAt", "threadId", 5 FROM thread_messages WHERE id LIKE 'old%';"#
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let dir = tempdir("restore-defaults");
    let r = roots(&db.pool, "thread_messages").await;
    let lines = retain(&db.pool, &r, &retain_opts(&dir, 3), &NoProgress)
        .await
        .unwrap();
    let manifests: Vec<_> = lines
        .iter()
        .filter(|l| l.partition.ends_with("2021_03"))
        .filter_map(|l| l.manifest.clone())
        .collect();
    assert!(!exists(&db.pool, "thread_messages_p2021_03").await);
    // Late rows of the dropped month, with their reads and reactions.
    sqlx::raw_sql(&format!(
        r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "createdAt")
           VALUES ('late1', '{TENANT}', 'th1', 1, 'late', '2021-03-20'), ('late2', '{TENANT}', 'th1', 1, 'late', '2021-03-21');
           INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id)
           SELECT tenant_id, id, "createdAt", "threadId", 6 FROM thread_messages WHERE id LIKE 'late%';
           INSERT INTO message_reactions (tenant_id, message_id, message_created_at, thread_id, user_id, emoji)
           SELECT tenant_id, id, "createdAt", "threadId", 6, '👍' FROM thread_messages WHERE id LIKE 'late%';"#
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        count(&db.pool, "message_reads_default WHERE user_id = 6").await,
        2
    );
    restore::restore(&db.pool, &manifests, LockPolicy::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(
        count(&db.pool, "message_reads WHERE user_id = 6").await,
        2,
        "late reads kept"
    );
    assert_eq!(
        count(&db.pool, "message_reactions WHERE user_id = 6").await,
        2,
        "late reactions kept"
    );
    assert_eq!(count(&db.pool, "message_reads WHERE user_id = 5").await, 20);
    assert_eq!(count(&db.pool, "thread_messages_p2021_03").await, 22);
    assert_eq!(count(&db.pool, "message_reads_p2021_03").await, 22);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 4: a reaction removed in JSONB while the backfill's batch that read
/// it is still running must not come back in `message_reactions`. The
/// batch is paused, by a trigger, in the middle of its insert.
#[tokio::test]
async fn normalize_backfill_does_not_resurrect_a_reaction_removed_meanwhile() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    for i in 1..=5 {
        message(
            &db.pool,
            "thread_messages",
            &format!("m{i}"),
            "2026-01-10",
            "[]",
            r#"[{"userId": 1, "emoji": "👍"}, {"userId": 2, "emoji": "🎉"}]"#,
        )
        .await;
    }
    let mut pauses = Pauses::install(&db.url).await;
    // The backfill (application name bisman) pauses as it inserts m3's rows.
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION harness_pause_backfill() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF current_setting('application_name') = 'bisman' AND NEW.message_id = 'm3' THEN
                 PERFORM bisman_lifecycle_step('{}');
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER harness_pause_backfill BEFORE INSERT ON message_reactions
             FOR EACH ROW EXECUTE FUNCTION harness_pause_backfill();",
        steps::NORMALIZE_BATCH
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    pauses.hold(steps::NORMALIZE_BATCH).await;
    let pool = db.pool.clone();
    let task = tokio::spawn(async move {
        normalize::normalize(
            &pool,
            Kind::Reactions,
            &NormalizeOptions {
                batch_size: 100,
                ..Default::default()
            },
            &NoProgress,
        )
        .await
    });
    assert!(pauses.arrival(steps::NORMALIZE_BATCH, &task).await);
    // The application removes user 2's reaction from m3 and commits.
    let mut app = side(&db.url).await;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut app)
        .await
        .unwrap();
    let write = tokio::spawn(async move {
        sqlx::query(r#"UPDATE thread_messages SET reactions = '[{"userId": 1, "emoji": "👍"}]' WHERE id = 'm3'"#)
            .execute(&mut app)
            .await
            .map(|_| ())
    });
    pauses.until_waiting_or_done(pid, &write).await;
    pauses.release(steps::NORMALIZE_BATCH).await;
    task.await.unwrap().unwrap();
    write.await.unwrap().unwrap();
    let report = normalize::verify(&db.pool, Kind::Reactions, 100, 10, &NoProgress)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        count(&db.pool, "message_reactions WHERE message_id = 'm3'").await,
        1
    );
}

/// Item 5: while premake moves rows waiting in the default partition into
/// their new month, every one of them stays visible and writable.
#[tokio::test]
async fn premake_keeps_rows_waiting_in_the_default_partition_visible() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    let far = Month::current().plus(14);
    let start = far.start().format("%Y-%m-%d %H:%M:%S").to_string();
    events(&db.pool, &format!("{start}+00"), 300).await;
    let mut h = Harness::install(
        &db.url,
        Subject::usage_events("client_usage_events_partitioned"),
        None,
    )
    .await;
    let pool = db.pool.clone();
    let report = h
        .run(
            steps::MONTH_STAGED,
            &start,
            Box::pin(async move {
                let r = registry::roots(&pool, &["client_usage_events".into()])
                    .await
                    .map_err(|e| e.to_string())?;
                let opts = PremakeOptions {
                    months: Some(14),
                    ..Default::default()
                };
                premake(&pool, &r, &opts, &NoProgress)
                    .await
                    .map(|m| format!("{} months", m.len()))
                    .map_err(|e| e.to_string())
            }),
        )
        .await;
    eprintln!("{}", report.line());
    assert_ne!(report.reached, Reached::Never);
    report.assert_clean();
    assert!(report.op.is_ok());
    // 300 waiting; the step's insert and delete and the open transaction's
    // insert and delete cancel out.
    assert_eq!(
        count(&db.pool, &far.partition_name("client_usage_events")).await,
        300
    );
}

/// Item 6: each maintenance transaction sets its own statement limit. The
/// pool here cancels statements after 300 ms; each operation is held at a
/// step inside its transaction for longer than that.
#[tokio::test]
async fn maintenance_statements_do_not_use_the_pool_statement_timeout() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    ensure(&db.pool, "client_usage_events", "2020-07-01", 2).await;
    events(&db.pool, "2020-07-03 00:00+00", 10).await;
    events(&db.pool, "2020-08-03 00:00+00", 10).await;
    let far = Month::current().plus(14);
    events(
        &db.pool,
        &format!("{}+00", far.start().format("%Y-%m-%d %H:%M:%S")),
        10,
    )
    .await;
    let opts: PgConnectOptions = db.url.parse().unwrap();
    let impatient = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(
            opts.application_name("bisman")
                .options([("timezone", "UTC"), ("statement_timeout", "300ms")]),
        )
        .await
        .unwrap();
    let dir = tempdir("limits");
    let mut pauses = Pauses::install(&db.url).await;
    let r = roots(&db.pool, "client_usage_events").await;

    async fn held<T: Send + 'static>(
        pauses: &mut Pauses,
        step: &str,
        task: tokio::task::JoinHandle<T>,
    ) -> T {
        assert!(pauses.arrival(step, &task).await, "{step} not reached");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        pauses.release(step).await;
        task.await.unwrap()
    }

    pauses.hold(steps::ARCHIVE_SNAPSHOT).await;
    let (p, rr, d) = (impatient.clone(), r.clone(), dir.clone());
    let t = tokio::spawn(async move {
        archive::archive(
            &p,
            &rr,
            Some(1),
            &d,
            LockPolicy::default(),
            false,
            &NoProgress,
        )
        .await
    });
    let archived = held(&mut pauses, steps::ARCHIVE_SNAPSHOT, t).await;
    assert!(archived.is_ok(), "archive: {archived:?}");
    let manifests: Vec<_> = archived
        .unwrap()
        .into_iter()
        .filter_map(|l| l.manifest)
        .collect();
    assert_eq!(manifests.len(), 2, "both months archived");

    pauses.hold(steps::RETIRE_LOCKED).await;
    let (p, rr, d) = (impatient.clone(), r.clone(), dir.clone());
    let t = tokio::spawn(async move { retain(&p, &rr, &retain_opts(&d, 1), &NoProgress).await });
    let retained = held(&mut pauses, steps::RETIRE_LOCKED, t).await;
    assert!(retained.is_ok(), "retain: {retained:?}");
    assert!(
        retained.unwrap().iter().any(|l| l.action == "dropped"),
        "the archived months were dropped"
    );

    pauses.hold(steps::RESTORE_LOADED).await;
    let p = impatient.clone();
    let t = tokio::spawn(async move {
        restore::restore(&p, &manifests, LockPolicy::default(), &NoProgress).await
    });
    let restored = held(&mut pauses, steps::RESTORE_LOADED, t).await;
    assert!(restored.is_ok(), "restore: {restored:?}");

    pauses.hold(steps::MONTH_STAGED).await;
    let (p, rr) = (impatient.clone(), r.clone());
    let t = tokio::spawn(async move {
        let opts = PremakeOptions {
            months: Some(14),
            ..Default::default()
        };
        premake(&p, &rr, &opts, &NoProgress).await
    });
    let made = held(&mut pauses, steps::MONTH_STAGED, t).await;
    assert!(made.is_ok(), "premake: {made:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 7, before the swap: retention leaves the partitioned twin of a
/// table being migrated alone, so the swap still finds every row.
#[tokio::test]
async fn retention_waits_for_a_migration_to_swap() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    sqlx::raw_sql(&format!(
        "INSERT INTO client_usage_events (tenant_id, event_type, occurred_at)
         SELECT '{TENANT}', 'flat', now() - make_interval(days => 40 + g) FROM generate_series(1, 90) g;"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let mut opts = MigrateOptions {
        swap: false,
        ..Default::default()
    };
    migrate(&db.pool, "client_usage_events", &opts, &NoProgress)
        .await
        .unwrap();
    let dir = tempdir("migrating");
    let r = roots(&db.pool, "client_usage_events").await;
    let lines = retain(&db.pool, &r, &retain_opts(&dir, 0), &NoProgress)
        .await
        .unwrap();
    assert!(!lines.is_empty());
    assert!(
        lines
            .iter()
            .all(|l| l.action == "skipped" && l.reason.contains("migrate")),
        "{lines:?}"
    );
    opts.swap = true;
    let done = migrate(&db.pool, "client_usage_events", &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(done.state, "swapped");
    assert_eq!(
        count(&db.pool, "client_usage_events WHERE event_type = 'flat'").await,
        90
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 7, after the swap: months retained and restored on the partitioned
/// table reach the flat one through the change log, so unswap works and
/// the flat table matches.
#[tokio::test]
async fn drops_and_restores_after_a_swap_still_allow_unswap() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    sqlx::raw_sql(&format!(
        "INSERT INTO client_usage_events (tenant_id, event_type, occurred_at)
         SELECT '{TENANT}', 'flat', date_trunc('month', now()) - interval '5 months' + make_interval(hours => g)
         FROM generate_series(1, 50) g;
         INSERT INTO client_usage_events (tenant_id, event_type, occurred_at)
         SELECT '{TENANT}', 'recent', now() - make_interval(mins => g) FROM generate_series(1, 50) g;"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    migrate(
        &db.pool,
        "client_usage_events",
        &MigrateOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let dir = tempdir("after-swap");
    let mut h = Harness::install(
        &db.url,
        Subject::usage_events("client_usage_events"),
        Some(&dir),
    )
    .await;
    let r = roots(&db.pool, "client_usage_events").await;
    let lines = retain(&db.pool, &r, &retain_opts(&dir, 3), &NoProgress)
        .await
        .unwrap();
    let dropped: Vec<_> = lines.iter().filter(|l| l.action == "dropped").collect();
    assert!(!dropped.is_empty(), "{lines:?}");
    assert_eq!(h.check_now().await, (0, 0));
    unswap(
        &db.pool,
        "client_usage_events",
        LockPolicy::default(),
        &NoProgress,
    )
    .await
    .expect("unswap after a drop");
    assert_eq!(h.check_now().await, (0, 0), "the flat table after unswap");
    assert_eq!(
        count(&db.pool, "client_usage_events WHERE event_type = 'flat'").await,
        0
    );
    // And forward again, then a restore, then back.
    migrate(
        &db.pool,
        "client_usage_events",
        &MigrateOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    let manifests: Vec<_> = dropped.iter().filter_map(|l| l.manifest.clone()).collect();
    restore::restore(&db.pool, &manifests, LockPolicy::default(), &NoProgress)
        .await
        .unwrap();
    unswap(
        &db.pool,
        "client_usage_events",
        LockPolicy::default(),
        &NoProgress,
    )
    .await
    .expect("unswap after a restore");
    assert_eq!(
        count(&db.pool, "client_usage_events WHERE event_type = 'flat'").await,
        50
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 8: a second premake while the first is still making the same month
/// (its transaction not committed) waits for it and finds the month made,
/// instead of failing on the half-made month — through the SQL function and
/// through `bisman partitions premake`.
#[tokio::test]
async fn two_premakes_at_once_both_succeed() {
    let db = TestDb::migrated().await;
    let mut pauses = Pauses::install(&db.url).await;
    for (ahead, rust) in [(12, false), (13, true)] {
        // The first month the migration (and the previous round) did not make.
        let far = Month::current().plus(ahead);
        let mut first = side(&db.url).await;
        sqlx::raw_sql(&format!(
            "BEGIN; SELECT count(*) FROM bisman_ensure_partitions('client_usage_events', '{}', 1);",
            far.first_day()
        ))
        .execute(&mut first)
        .await
        .unwrap();
        let pool = db.pool.clone();
        let second = tokio::spawn(async move {
            if rust {
                let r = registry::roots(&pool, &["client_usage_events".into()])
                    .await
                    .unwrap();
                let opts = PremakeOptions {
                    months: Some(ahead),
                    ..Default::default()
                };
                premake(&pool, &r, &opts, &NoProgress)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            } else {
                sqlx::query(
                    "SELECT count(*) FROM create_future_partitions('client_usage_events', $1)",
                )
                .bind(ahead)
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
        });
        pauses.until_op_blocked().await;
        sqlx::raw_sql("COMMIT").execute(&mut first).await.unwrap();
        let made = second.await.unwrap();
        assert!(
            made.is_ok(),
            "{}: {made:?}",
            if rust {
                "premake"
            } else {
                "create_future_partitions"
            }
        );
        assert!(partitions(&db.pool, "client_usage_events_partitioned")
            .await
            .contains(&far.partition_name("client_usage_events")));
    }
}

/// Item 9: DDL behind a long reader gives way instead of queueing every
/// later query behind it: a query that arrives after it completes while
/// the long reader is still open, and the DDL succeeds once it is gone.
#[tokio::test]
async fn ddl_behind_a_long_reader_does_not_block_later_queries() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    ensure(&db.pool, "client_usage_events", "2020-09-01", 1).await;
    let far = Month::current().plus(15).first_day().to_string();
    let cases: [(&str, String, &str); 3] = [
        (
            "bisman_ensure_partitions",
            format!(
                "SELECT count(*) FROM bisman_ensure_partitions('client_usage_events', '{far}', 1)"
            ),
            "client_usage_events_partitioned",
        ),
        (
            "drop_old_partitions",
            "SELECT count(*) FROM drop_old_partitions('client_usage_events', 2)".into(),
            "client_usage_events_partitioned",
        ),
        ("normalize unmirror", String::new(), "thread_messages"),
    ];
    normalize::mirror(&db.pool, Kind::Reads, LockPolicy::default())
        .await
        .unwrap();
    let mut pauses = Pauses::install(&db.url).await;
    for (what, sql, table) in cases {
        let mut reader = side(&db.url).await;
        sqlx::raw_sql(&format!("BEGIN; SELECT count(*) FROM {table};"))
            .execute(&mut reader)
            .await
            .unwrap();
        let pool = db.pool.clone();
        let ddl = tokio::spawn(async move {
            if sql.is_empty() {
                normalize::unmirror(&pool, Kind::Reads, LockPolicy::default())
                    .await
                    .map_err(|e| e.to_string())
            } else {
                sqlx::query(&sql)
                    .execute(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        });
        pauses.until_op_blocked().await;
        let later = side_pool(&db.url).await;
        let query = format!("SELECT count(*) FROM {table}");
        let q = tokio::spawn(async move { sqlx::query(&query).execute(&later).await });
        let finished = tokio::time::timeout(Duration::from_secs(30), q).await;
        assert!(
            finished.is_ok(),
            "{what}: a query arriving after it waited as long as the long reader"
        );
        sqlx::raw_sql("COMMIT").execute(&mut reader).await.unwrap();
        let done = ddl.await.unwrap();
        assert!(done.is_ok(), "{what}: {done:?}");
    }
}

/// Item 10: rows arriving for a month already dropped wait in the default
/// partition only until the next retention, which archives them as that
/// month again and drops it; status shows them meanwhile.
#[tokio::test]
async fn late_rows_for_a_dropped_month_are_archived_by_the_next_retention() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    ensure(&db.pool, "client_usage_events", "2020-06-01", 1).await;
    events(&db.pool, "2020-06-05 00:00+00", 20).await;
    let dir = tempdir("late");
    let r = roots(&db.pool, "client_usage_events").await;
    let first = retain(&db.pool, &r, &retain_opts(&dir, 2), &NoProgress)
        .await
        .unwrap();
    assert!(!exists(&db.pool, "client_usage_events_p2020_06").await);
    let june = first
        .iter()
        .find(|l| l.partition == "client_usage_events_p2020_06")
        .and_then(|l| l.manifest.clone())
        .unwrap();
    events(&db.pool, "2020-06-25 00:00+00", 3).await;
    assert_eq!(count(&db.pool, "client_usage_events_default").await, 3);
    let mut h = Harness::install(
        &db.url,
        Subject::usage_events("client_usage_events_partitioned"),
        Some(&dir),
    )
    .await;
    let s = status::status(&db.pool).await.unwrap();
    let cue = serde_json::to_value(
        s.iter()
            .find(|t| t.table.base_table == "client_usage_events")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cue["late_rows"], 3, "{cue}");
    let lines = retain(&db.pool, &r, &retain_opts(&dir, 2), &NoProgress)
        .await
        .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.partition == "client_usage_events_p2020_06" && l.action == "dropped"),
        "{lines:?}"
    );
    assert_eq!(count(&db.pool, "client_usage_events_default").await, 0);
    assert_eq!(h.check_now().await, (0, 0));
    // Restoring June brings back both of its archives (the late rows'
    // manifest is found beside the first).
    let back = restore::restore(&db.pool, &[june], LockPolicy::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(back.iter().map(|b| b.rows).sum::<i64>(), 23, "{back:?}");
    assert_eq!(count(&db.pool, "client_usage_events_p2020_06").await, 23);
    assert_eq!(h.check_now().await, (0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Item 11: the manifest's `load_with` line works when pasted into a shell
/// (camelCase columns quoted).
#[tokio::test]
async fn manifest_load_with_works_when_pasted() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    ensure(&db.pool, "thread_messages", "2021-05-01", 1).await;
    for i in 0..7 {
        message(
            &db.pool,
            "thread_messages_partitioned",
            &format!("x{i}"),
            "2021-05-09",
            r#"[{"userId": 3}]"#,
            "[]",
        )
        .await;
    }
    let dir = tempdir("load-with");
    let r = roots(&db.pool, "thread_messages").await;
    archive::archive(
        &db.pool,
        &r,
        Some(2),
        &dir,
        LockPolicy::default(),
        false,
        &NoProgress,
    )
    .await
    .unwrap();
    let manifest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.to_string_lossy().contains("thread_messages_p2021_05")
                && p.to_string_lossy().ends_with(".manifest.json")
        })
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let load_with = m["load_with"].as_str().unwrap().to_string();
    sqlx::raw_sql(
        "CREATE TABLE loaded_back (LIKE thread_messages_partitioned);
         ALTER TABLE thread_messages_p2021_05 RENAME TO thread_messages_p2021_05_kept;
         ALTER TABLE loaded_back RENAME TO thread_messages_p2021_05;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let opts: PgConnectOptions = db.url.parse().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&load_with)
        .current_dir(&dir)
        .env("PGHOST", opts.get_host())
        .env("PGPORT", opts.get_port().to_string())
        .env("PGUSER", opts.get_username())
        .env("PGDATABASE", &db.name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{load_with}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&db.pool, "thread_messages_p2021_05").await, 7);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Status (and so `--json` and the ops page) shows month tables left
/// detached, rows in default partitions by month, and months changed since
/// their archive.
#[tokio::test]
async fn status_shows_detached_months_default_rows_and_changed_archives() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    ensure(&db.pool, "client_usage_events", "2020-10-01", 1).await;
    events(&db.pool, "2020-10-02 00:00+00", 5).await;
    let dir = tempdir("status");
    let r = roots(&db.pool, "client_usage_events").await;
    archive::archive(
        &db.pool,
        &r,
        Some(1),
        &dir,
        LockPolicy::default(),
        false,
        &NoProgress,
    )
    .await
    .unwrap();
    sqlx::raw_sql(
        "UPDATE client_usage_events_partitioned SET event_type = 'edited'
             WHERE id = (SELECT min(id) FROM client_usage_events_p2020_10);
         CREATE TABLE client_usage_events_p2041_01 (LIKE client_usage_events_partitioned);",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let far = Month::current().plus(16);
    events(
        &db.pool,
        &format!("{}+00", far.start().format("%Y-%m-%d %H:%M:%S")),
        4,
    )
    .await;
    let s = status::status(&db.pool).await.unwrap();
    let cue = serde_json::to_value(
        s.iter()
            .find(|t| t.table.base_table == "client_usage_events")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(cue["default_rows"], 4, "{cue}");
    assert_eq!(cue["default_months"][0]["rows"], 4, "{cue}");
    assert_eq!(cue["default_months"][0]["kind"], "ahead", "{cue}");
    assert_eq!(
        cue["detached_months"][0]["name"], "client_usage_events_p2041_01",
        "{cue}"
    );
    assert_eq!(
        cue["changed_since_archive"][0]["partition"], "client_usage_events_p2020_10",
        "{cue}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
