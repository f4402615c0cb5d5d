//! migrate_readby_to_normalized / migrate_reactions_to_normalized on messy
//! data: valid entries land once, the rest are quarantined with a reason,
//! nothing is lost from the source, and a second run changes nothing.

mod common;

use bisman_testkit::TestDb;
use common::*;
use sqlx::{PgPool, Row};

#[derive(Debug, PartialEq)]
struct Summary {
    scanned: i64,
    found: i64,
    inserted: i64,
    present: i64,
    malformed: i64,
}

async fn run(pool: &PgPool, function: &str) -> Summary {
    let r = sqlx::query(&format!("SELECT * FROM {function}()"))
        .fetch_one(pool)
        .await
        .unwrap();
    Summary {
        scanned: r.get("messages_scanned"),
        found: r.get("entries_found"),
        inserted: r.get("rows_inserted"),
        present: r.get("already_present"),
        malformed: r.get("malformed_entries"),
    }
}

async fn source_digest(pool: &PgPool) -> String {
    sqlx::query_scalar(r#"SELECT md5(string_agg(id || "readBy"::text || reactions::text, '|' ORDER BY id)) FROM thread_messages"#)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn quarantine(pool: &PgPool, kind: &str) -> Vec<(String, i32, String)> {
    sqlx::query("SELECT message_id, entry_index, reason FROM normalization_quarantine WHERE kind = $1 ORDER BY 1, 2")
        .bind(kind)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test]
async fn read_receipts() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    message(
        &db.pool,
        "thread_messages",
        "m1",
        "2026-01-05 08:00",
        r#"[{"userId": 1, "readAt": "2026-01-05T09:00:00Z"},
            {"userId": 1, "readAt": "2026-01-05T08:30:00Z"},
            {"userId": "2"},
            {"userId": 3.0, "readAt": null},
            {"userId": null},
            {"userId": "abc"},
            {"userId": -4},
            {"userId": 99999999999},
            {"readAt": "2026-01-05T09:00:00Z"},
            "just text",
            {"userId": 5, "readAt": "yesterday"}]"#,
        "[]",
    )
    .await;
    message(
        &db.pool,
        "thread_messages",
        "m2",
        "2026-01-06",
        r#"{"userId": 1}"#,
        "[]",
    )
    .await;
    message(&db.pool, "thread_messages", "m3", "2026-01-07", "[]", "[]").await;
    let before = source_digest(&db.pool).await;

    let first = run(&db.pool, "migrate_readby_to_normalized").await;
    assert_eq!(
        first,
        Summary {
            scanned: 3,
            found: 11,
            inserted: 3,
            present: 0,
            malformed: 8
        }
    );
    let reads: Vec<(i32, String)> =
        sqlx::query("SELECT user_id, read_at::text FROM message_reads ORDER BY 1")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
    assert_eq!(
        reads,
        [
            (1, "2026-01-05 08:30:00".to_string()), // the duplicate keeps the earliest read
            (2, "2026-01-05 08:00:00".to_string()), // no readAt: the message's time
            (3, "2026-01-05 08:00:00".to_string()),
        ]
    );
    let q = quarantine(&db.pool, "reads").await;
    let reasons: Vec<&str> = q.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "userId is null",
            "userId is not a positive 32-bit integer",
            "userId is not a positive 32-bit integer",
            "userId is not a positive 32-bit integer",
            "missing userId",
            "entry is not a JSON object",
            "readAt is not a timestamp",
            "\"readBy\" is not a JSON array",
        ]
    );
    assert_eq!(q.last().unwrap().0, "m2");
    assert_eq!(q.last().unwrap().1, -1);

    let second = run(&db.pool, "migrate_readby_to_normalized").await;
    assert_eq!(
        second,
        Summary {
            scanned: 3,
            found: 11,
            inserted: 0,
            present: 3,
            malformed: 8
        }
    );
    assert_eq!(count(&db.pool, "message_reads").await, 3);
    assert_eq!(
        count(&db.pool, "normalization_quarantine").await,
        8,
        "quarantined once"
    );
    assert_eq!(
        source_digest(&db.pool).await,
        before,
        "the JSONB columns are untouched"
    );
}

#[tokio::test]
async fn reactions_in_both_shapes() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    message(
        &db.pool,
        "thread_messages",
        "a",
        "2026-02-01",
        "[]",
        r#"[{"userId": 1, "emoji": "👍"}, {"userId": 1, "emoji": "👍"}, {"userId": 2, "emoji": "🎉"},
            {"userId": 3}, {"userId": 4, "emoji": ""}, {"userId": 5, "emoji": "this emoji is far too long"}]"#,
    )
    .await;
    message(
        &db.pool,
        "thread_messages",
        "b",
        "2026-02-02",
        "[]",
        r#"{"👍": [1, 2, "x"], "😀": "oops", "🙂": []}"#,
    )
    .await;
    message(
        &db.pool,
        "thread_messages",
        "c",
        "2026-02-03",
        "[]",
        r#""neither""#,
    )
    .await;
    let before = source_digest(&db.pool).await;

    let first = run(&db.pool, "migrate_reactions_to_normalized").await;
    assert_eq!(first.inserted, 4);
    assert_eq!(first.malformed, 6);
    let rows: Vec<(String, i32, String)> =
        sqlx::query("SELECT message_id, user_id, emoji FROM message_reactions ORDER BY 1, 2, 3")
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
    let expected = [
        ("a", 1, "👍"),
        ("a", 2, "🎉"),
        ("b", 1, "👍"),
        ("b", 2, "👍"),
    ];
    assert_eq!(
        rows,
        expected.map(|(m, u, e)| (m.to_string(), u, e.to_string()))
    );
    let reasons: Vec<String> = quarantine(&db.pool, "reactions")
        .await
        .into_iter()
        .map(|r| r.2)
        .collect();
    for want in [
        "emoji is missing or not a string",
        "emoji must be 1 to 20 characters",
        "userId is not a positive 32-bit integer",
        "users of a reaction are not a JSON array",
        "reactions is neither a JSON array nor an object",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }
    let second = run(&db.pool, "migrate_reactions_to_normalized").await;
    assert_eq!((second.inserted, second.present), (0, 4));
    assert_eq!(source_digest(&db.pool).await, before);
}

#[tokio::test]
async fn batches_walk_the_table_in_id_order() {
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    for i in 0..25 {
        message(
            &db.pool,
            "thread_messages",
            &format!("m{i:02}"),
            "2026-03-01",
            r#"[{"userId": 1}]"#,
            "[]",
        )
        .await;
    }
    let mut after: Option<String> = None;
    let mut batches = 0;
    loop {
        let r = sqlx::query(
            "SELECT messages_scanned, last_message_id FROM migrate_readby_to_normalized($1, 10)",
        )
        .bind(&after)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        let scanned: i64 = r.get(0);
        if scanned == 0 {
            break;
        }
        batches += 1;
        after = r.get(1);
    }
    assert_eq!(batches, 3);
    assert_eq!(count(&db.pool, "message_reads").await, 25);
    let err = sqlx::query("SELECT * FROM migrate_readby_to_normalized(NULL, 0)")
        .fetch_all(&db.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("batch size must be positive"));
}
