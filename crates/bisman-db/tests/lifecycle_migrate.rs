//! `partitions migrate` / `unswap` on a table that is being written to all
//! the time: inserts (random text ids, all over key order), updates and
//! deletes before, during and after the swap; every row exactly once, in its
//! last state, on both sides of the swap.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bisman_db::lifecycle::table_migration::{finish, migrate, unswap, MigrateOptions};
use bisman_db::lifecycle::{LockPolicy, NoProgress};
use bisman_testkit::TestDb;
use common::*;
use sqlx::PgPool;

/// Writes until told to stop; returns the id → content every row should have
/// (deleted rows absent).
async fn writer(pool: PgPool, stop: Arc<AtomicBool>) -> BTreeMap<String, String> {
    let mut expected = BTreeMap::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = uuid::Uuid::new_v4().to_string();
        let content = format!("w{n}");
        sqlx::query(
            r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content) VALUES ($1, $2, 'th1', 1, $3)"#,
        )
        .bind(&id)
        .bind(TENANT)
        .bind(&content)
        .execute(&pool)
        .await
        .unwrap();
        expected.insert(id, content);
        if n % 7 == 0 {
            let (id, _) = expected
                .iter()
                .nth((n as usize * 31) % expected.len())
                .unwrap();
            let id = id.clone();
            let content = format!("updated {n}");
            sqlx::query("UPDATE thread_messages SET content = $2 WHERE id = $1")
                .bind(&id)
                .bind(&content)
                .execute(&pool)
                .await
                .unwrap();
            expected.insert(id, content);
        }
        if n % 11 == 0 {
            let id = expected
                .keys()
                .nth((n as usize * 17) % expected.len())
                .unwrap()
                .clone();
            sqlx::query("DELETE FROM thread_messages WHERE id = $1")
                .bind(&id)
                .execute(&pool)
                .await
                .unwrap();
            expected.remove(&id);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    expected
}

async fn actual(pool: &PgPool, table: &str) -> BTreeMap<String, String> {
    let rows: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT id, content FROM {table} WHERE content <> 'seed'"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let n = rows.len();
    let map: BTreeMap<String, String> = rows.into_iter().collect();
    assert_eq!(map.len(), n, "a row is there twice");
    map
}

async fn relkind(pool: &PgPool, table: &str) -> String {
    sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn fk_target(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT confrelid::regclass::text FROM pg_constraint WHERE conname = 'message_reads_message_fkey' AND conparentid = 0",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_row_exactly_once_through_swap_and_unswap() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    // Old rows across many months, with receipts pointing at them.
    sqlx::raw_sql(&format!(
        r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "createdAt")
           SELECT md5(g::text), '{TENANT}', 'th1', 1, 'seed', (now() AT TIME ZONE 'UTC') - make_interval(hours => g * 5)
           FROM generate_series(1, 20000) g;
           INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id)
           SELECT tenant_id, id, "createdAt", "threadId", 9 FROM thread_messages WHERE content = 'seed' LIMIT 3000;"#
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writing = tokio::spawn(writer(db.new_pool(2).await, stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let opts = MigrateOptions {
        batch_size: 1_000,
        sleep: Duration::from_millis(5),
        locks: LockPolicy {
            attempts: 100,
            ..Default::default()
        },
        ..Default::default()
    };
    let report = migrate(&db.pool, "thread_messages", &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.state, "swapped");
    let swap = report.swap.clone().unwrap();
    assert!(
        swap.foreign_keys_repointed
            .iter()
            .any(|f| f.contains("message_reads_message_fkey")),
        "{swap:?}"
    );
    assert!(swap
        .indexes_renamed
        .iter()
        .any(|i| i.ends_with("-> idx_thread_messages_thread_created")));
    // Writes go on against the partitioned table.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let expected = writing.await.unwrap();
    assert!(
        expected.len() > 50,
        "the writer wrote throughout ({})",
        expected.len()
    );

    assert_eq!(relkind(&db.pool, "thread_messages").await, "p");
    assert_eq!(actual(&db.pool, "thread_messages").await, expected);
    assert_eq!(
        count(&db.pool, "thread_messages WHERE content = 'seed'").await,
        20000
    );
    assert_eq!(fk_target(&db.pool).await, "thread_messages");
    let parent: String = sqlx::query_scalar(
        "SELECT parent_table FROM bisman_partitioned_tables WHERE base_table = 'thread_messages'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(parent, "thread_messages");
    let on_live: String = sqlx::query_scalar(
        "SELECT indrelid::regclass::text FROM pg_index WHERE indexrelid = 'idx_thread_messages_thread_created'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(on_live, "thread_messages");
    // The SQL functions follow the new parent.
    let made: i64 =
        sqlx::query_scalar("SELECT count(*) FROM create_future_partitions('thread_messages', 1)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(made, 6);

    // A few more rows after the swap, then back.
    let stop = Arc::new(AtomicBool::new(false));
    let writing = tokio::spawn(writer(db.new_pool(2).await, stop.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let back = unswap(&db.pool, "thread_messages", opts.locks, &NoProgress)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut later = writing.await.unwrap();
    assert!(back.rows > 20000);
    assert_eq!(relkind(&db.pool, "thread_messages").await, "r");
    assert_eq!(fk_target(&db.pool).await, "thread_messages");
    let all = actual(&db.pool, "thread_messages").await;
    let mut want = expected.clone();
    want.append(&mut later);
    assert_eq!(
        all, want,
        "the flat table has every row, also those written after the swap"
    );
    let on_flat: String = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = (SELECT indrelid FROM pg_index WHERE indexrelid = 'idx_thread_messages_thread_created'::regclass)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(on_flat, "r");
    assert!(exists(&db.pool, "thread_messages_partitioned").await);

    // And forward again: it resumes from the unswapped state.
    let again = migrate(&db.pool, "thread_messages", &opts, &NoProgress)
        .await
        .unwrap();
    assert_eq!(again.state, "swapped");
    assert_eq!(actual(&db.pool, "thread_messages").await, want);

    // Finishing stops the change log; the retired table stays.
    let retired = finish(&db.pool, "thread_messages", opts.locks)
        .await
        .unwrap();
    assert_eq!(retired, "thread_messages_retired");
    assert!(exists(&db.pool, "thread_messages_retired").await);
    let log_triggers = count(&db.pool, "pg_trigger WHERE tgname LIKE 'bisman_migrate%'").await;
    assert_eq!(log_triggers, 0);
    let err = unswap(&db.pool, "thread_messages", opts.locks, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not swapped (state: finished)"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_what_it_cannot_do_safely() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    let opts = MigrateOptions::default();
    let err = migrate(&db.pool, "users", &opts, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown partitioned table"),
        "{err}"
    );
    let err = migrate(&db.pool, "message_reads", &opts, &NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("partitioned together with thread_messages"),
        "{err}"
    );
    // The spec's manual copy already put rows in the twin.
    sqlx::raw_sql(&format!(
        "INSERT INTO audit_logs (tenant_id, action, entity_type) VALUES ('{TENANT}', 'x', 'y');
         INSERT INTO audit_logs_partitioned SELECT * FROM audit_logs;"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let err = migrate(&db.pool, "audit_logs", &opts, &NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already holds rows"), "{err}");
    let err = unswap(
        &db.pool,
        "client_usage_events",
        LockPolicy::default(),
        &NoProgress,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("is not swapped"), "{err}");
    // A dry run changes nothing.
    let plan = migrate(
        &db.pool,
        "client_usage_events",
        &MigrateOptions {
            dry_run: true,
            ..Default::default()
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(plan.state, "not started");
    assert!(!plan.notes.is_empty());
    assert_eq!(count(&db.pool, "bisman_table_migrations").await, 0);
}
