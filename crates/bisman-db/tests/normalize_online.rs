//! `normalize reads` on a million messages with 1% malformed entries while
//! the application keeps writing: valid entries land once, malformed ones are
//! quarantined, writes made during the run are captured by the mirror
//! trigger, a second run changes nothing, and verify finds no difference.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bisman_db::lifecycle::{LockPolicy, NoProgress};
use bisman_db::normalize::{normalize, unmirror, verify, Kind, NormalizeOptions};
use bisman_testkit::TestDb;
use common::*;
use sqlx::PgPool;

const MESSAGES: i64 = 1_000_000;

async fn seed(pool: &PgPool) {
    seed_base(pool).await;
    // Every 100th message has one malformed entry besides its valid one.
    sqlx::raw_sql(&format!(
        r#"SET statement_timeout = 0;
           INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "readBy", "createdAt")
           SELECT 'm' || lpad(g::text, 7, '0'), '{TENANT}', 'th1', 1, '',
                  CASE WHEN g % 100 = 0
                       THEN jsonb_build_array(jsonb_build_object('userId', g % 50 + 1), jsonb_build_object('userId', 'x'))
                       ELSE jsonb_build_array(jsonb_build_object('userId', g % 50 + 1, 'readAt', '2026-01-01T10:00:00Z')) END,
                  timestamp '2026-01-01' + make_interval(secs => g)
           FROM generate_series(1, {MESSAGES}) g;
           ANALYZE thread_messages;"#
    ))
    .execute(pool)
    .await
    .unwrap();
}

/// Inserts new messages and appends receipts to old ones until stopped.
async fn app(pool: PgPool, stop: Arc<AtomicBool>) -> i64 {
    let mut n = 0i64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        sqlx::query(
            r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "readBy")
               VALUES ('new' || $1, $2, 'th1', 1, '', '[{"userId": 7}]')"#,
        )
        .bind(n)
        .bind(TENANT)
        .execute(&pool)
        .await
        .unwrap();
        // An old message (possibly already backfilled) gets a new reader.
        sqlx::query(
            r#"UPDATE thread_messages SET "readBy" = "readBy" || '[{"userId": 999}]'
               WHERE id = 'm' || lpad(($1 * 7919 % 1000000 + 1)::text, 7, '0')"#,
        )
        .bind(n)
        .execute(&pool)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    n
}

#[tokio::test]
async fn a_million_messages_while_the_application_writes() {
    let db = TestDb::migrated().await;
    seed(&db.pool).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writing = tokio::spawn(app(db.new_pool(2).await, stop.clone()));
    let opts = NormalizeOptions {
        batch_size: 20_000,
        ..Default::default()
    };
    let first = normalize(&db.pool, Kind::Reads, &opts, &NoProgress)
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writing.await.unwrap();
    assert!(written > 0);
    assert!(first.messages_scanned >= MESSAGES);
    assert_eq!(first.malformed_entries, MESSAGES / 100);

    let reads = count(&db.pool, "message_reads").await;
    let quarantined = count(&db.pool, "normalization_quarantine WHERE kind = 'reads'").await;
    assert_eq!(quarantined, MESSAGES / 100, "one per malformed entry, once");
    // One receipt per message, one per new message, one per distinct updated old message.
    let updated = count(&db.pool, "message_reads WHERE user_id = 999").await;
    assert!(updated > 0, "receipts written during the run were captured");
    assert_eq!(reads, MESSAGES + written + updated);
    let dupes = count(
        &db.pool,
        "(SELECT message_id, user_id FROM message_reads GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .await;
    assert_eq!(dupes, 0);
    assert_eq!(
        count(&db.pool, "message_reads WHERE message_id LIKE 'new%'").await,
        written
    );

    // A second run: nothing new, nothing changed.
    let second = normalize(
        &db.pool,
        Kind::Reads,
        &NormalizeOptions {
            restart: true,
            ..opts
        },
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(second.rows_inserted, 0);
    assert_eq!(count(&db.pool, "message_reads").await, reads);
    assert_eq!(
        count(&db.pool, "normalization_quarantine").await,
        quarantined
    );

    let report = verify(&db.pool, Kind::Reads, 50_000, 5, &NoProgress)
        .await
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.quarantined, quarantined);

    // Verify sees a difference when one appears; the mirror stops on request.
    unmirror(&db.pool, Kind::Reads, LockPolicy::default())
        .await
        .unwrap();
    sqlx::query(
        r#"UPDATE thread_messages SET "readBy" = '[{"userId": 4242}]' WHERE id = 'm0000001'"#,
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let report = verify(&db.pool, Kind::Reads, 50_000, 5, &NoProgress)
        .await
        .unwrap();
    assert_eq!(report.missing_in_table, 1);
    assert_eq!(report.extra_in_table, 1);
    assert_eq!(report.samples[0].message_id, "m0000001");
}
