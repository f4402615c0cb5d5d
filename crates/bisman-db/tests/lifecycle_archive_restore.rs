//! Archive → drop → restore of a month of messages with its read receipts
//! and reactions (children first), identical rows after the round trip;
//! corrupt and truncated archives refused on verify and on restore.

mod common;

use std::path::PathBuf;

use bisman_db::lifecycle::retain::{retain, RetainOptions};
use bisman_db::lifecycle::table_migration::{migrate, MigrateOptions};
use bisman_db::lifecycle::{registry, restore, LifecycleError, LockPolicy, NoProgress};
use bisman_testkit::TestDb;
use common::*;
use sqlx::PgPool;

const TABLES: [&str; 3] = ["thread_messages", "message_reads", "message_reactions"];

/// Messages partitioned (the flat table migrated), a month of 2021 holding
/// awkward text, with reads and reactions pointing at it.
async fn month_of_messages(pool: &PgPool) {
    seed_base(pool).await;
    migrate(
        pool,
        "thread_messages",
        &MigrateOptions::default(),
        &NoProgress,
    )
    .await
    .unwrap();
    sqlx::query(
        "SELECT count(*) FROM bisman_ensure_partitions('thread_messages', '2021-03-01', 1)",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "readBy", reactions, "createdAt")
           SELECT 'old' || g, '{TENANT}', 'th1', 1,
                  CASE g % 3 WHEN 0 THEN E'line\nbreak, "quoted", \\backslash'
                             WHEN 1 THEN '🎉 émoji ; tab' || chr(9) ELSE '' END,
                  jsonb_build_array(jsonb_build_object('userId', g)), '[]',
                  timestamp '2021-03-01' + make_interval(mins => g * 7)
           FROM generate_series(1, 500) g;
           INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id, read_at)
           SELECT tenant_id, id, "createdAt", "threadId", u, "createdAt" + interval '1 minute'
           FROM thread_messages, generate_series(1, 2) u WHERE id LIKE 'old%';
           INSERT INTO message_reactions (tenant_id, message_id, message_created_at, thread_id, user_id, emoji)
           SELECT tenant_id, id, "createdAt", "threadId", 3, '👍' FROM thread_messages WHERE id LIKE 'old%';"#
    ))
    .execute(pool)
    .await
    .unwrap();
    for t in TABLES {
        sqlx::raw_sql(&format!(
            "CREATE TABLE snap_{t} AS SELECT * FROM {t}_p2021_03"
        ))
        .execute(pool)
        .await
        .unwrap();
    }
}

async fn differences(pool: &PgPool, t: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT (SELECT count(*) FROM (SELECT * FROM snap_{t} EXCEPT SELECT * FROM {t}_p2021_03) a)
              + (SELECT count(*) FROM (SELECT * FROM {t}_p2021_03 EXCEPT SELECT * FROM snap_{t}) b)"
    ))
    .fetch_one(pool)
    .await
    .unwrap()
}

fn options(dir: &std::path::Path) -> RetainOptions {
    RetainOptions {
        keep_months: None,
        archive_dir: dir.to_path_buf(),
        no_archive: false,
        dry_run: false,
        locks: LockPolicy::default(),
    }
}

async fn archive_and_drop(pool: &PgPool, dir: &std::path::Path) -> Vec<PathBuf> {
    let roots = registry::roots(pool, &["thread_messages".into()])
        .await
        .unwrap();
    let lines = retain(pool, &roots, &options(dir), &NoProgress)
        .await
        .unwrap();
    let ours: Vec<_> = lines
        .iter()
        .filter(|l| l.partition.ends_with("2021_03"))
        .collect();
    let order: Vec<&str> = ours.iter().map(|l| l.partition.as_str()).collect();
    assert_eq!(
        order,
        [
            "message_reactions_p2021_03",
            "message_reads_p2021_03",
            "thread_messages_p2021_03"
        ],
        "children first"
    );
    assert!(ours.iter().all(|l| l.action == "dropped"), "{lines:?}");
    for t in TABLES {
        assert!(!exists(pool, &format!("{t}_p2021_03")).await);
    }
    ours.iter().map(|l| l.manifest.clone().unwrap()).collect()
}

#[tokio::test]
async fn messages_reads_and_reactions_round_trip() {
    let db = TestDb::migrated().await;
    month_of_messages(&db.pool).await;
    let dir = tempdir("roundtrip");
    let mut manifests = archive_and_drop(&db.pool, &dir).await;
    // Given in the wrong order on purpose: messages must be restored first.
    manifests.sort();
    let back = restore::restore(&db.pool, &manifests, LockPolicy::default(), &NoProgress)
        .await
        .unwrap();
    assert_eq!(back[0].table, "thread_messages");
    for t in TABLES {
        assert_eq!(differences(&db.pool, t).await, 0, "{t}");
    }
    assert_eq!(count(&db.pool, "message_reads_p2021_03").await, 1000);
    // The foreign key still holds: a read of a restored message is accepted,
    // and deleting the message cascades.
    sqlx::query("DELETE FROM thread_messages WHERE id = 'old1'")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        count(&db.pool, "message_reads WHERE message_id = 'old1'").await,
        0
    );
    let restored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM bisman_partition_archives WHERE restored_at IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(restored, 3);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn corrupt_or_truncated_archives_are_refused() {
    let db = TestDb::migrated().await;
    month_of_messages(&db.pool).await;
    let dir = tempdir("corrupt");
    let manifests = archive_and_drop(&db.pool, &dir).await;
    let messages = manifests
        .iter()
        .find(|m| m.to_string_lossy().contains("thread_messages_p2021_03"))
        .unwrap()
        .clone();
    let data = PathBuf::from(
        messages
            .to_string_lossy()
            .replace(".manifest.json", ".csv.gz"),
    );
    let good = std::fs::read(&data).unwrap();
    restore::verify_archive(&messages).unwrap();

    let refused = |expect: &'static str| {
        let messages = messages.clone();
        let pool = db.pool.clone();
        async move {
            let err = restore::verify_archive(&messages).unwrap_err();
            assert!(matches!(err, LifecycleError::BadArchive { .. }), "{err}");
            assert!(err.to_string().contains(expect), "{err}");
            let err = restore::restore(
                &pool,
                std::slice::from_ref(&messages),
                LockPolicy::default(),
                &NoProgress,
            )
            .await
            .unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
            assert!(
                !exists(&pool, "thread_messages_p2021_03").await,
                "nothing restored"
            );
        }
    };
    std::fs::write(&data, &good[..good.len() / 2]).unwrap();
    refused("truncated or corrupt").await;
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    std::fs::write(&data, &flipped).unwrap();
    refused("corrupt").await;
    let mut extra = good.clone();
    extra.extend_from_slice(b"junk");
    std::fs::write(&data, &extra).unwrap();
    refused("does not match the manifest").await;
    std::fs::write(&data, &good).unwrap();
    let text = std::fs::read_to_string(&messages).unwrap();
    std::fs::write(
        &messages,
        text.replace("\"row_count\": 500", "\"row_count\": 499"),
    )
    .unwrap();
    refused("holds 500 rows but the manifest says 499").await;
    std::fs::write(&messages, text).unwrap();
    std::fs::remove_file(&data).unwrap();
    let err = restore::verify_archive(&messages).unwrap_err();
    assert!(err.to_string().contains("No such file"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
