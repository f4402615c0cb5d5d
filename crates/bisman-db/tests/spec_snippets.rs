//! The spec is the contract: every SQL statement in the code blocks of
//! `docs/P3_SCALING_SEED.md` (sections 1, 2, 3, 5, 6, and the `psql -c` lines
//! of section 7) runs as written, read from the document itself, and does
//! what the spec says.
//!
//! Statements that create objects (`CREATE TABLE`, `CREATE INDEX`) are what
//! an ERP that followed the spec by hand already ran: they are run verbatim
//! on a pre-P3 database, and `bisman migrate` must then adopt what they made.
//! Everything else runs verbatim on a migrated database.

mod common;

use bisman_db::migrate::BASELINE_VERSION;
use bisman_db::Migrator;
use bisman_testkit::TestDb;
use common::*;
use sqlx::{Executor, PgPool, Row};

const SPEC: &str = include_str!("../../../docs/P3_SCALING_SEED.md");

/// The SQL of the fenced blocks of spec section `n` (`lang` is `sql` or `bash`).
fn blocks(n: u32, lang: &str) -> Vec<String> {
    let heading = format!("## {n}. ");
    let start = SPEC
        .find(&heading)
        .unwrap_or_else(|| panic!("spec has no section {n}"));
    let rest = &SPEC[start + heading.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut text = section;
    while let Some(i) = text.find(&fence) {
        let body = &text[i + fence.len()..];
        let end = body.find("```").expect("closed fence");
        out.push(body[..end].to_string());
        text = &body[end + 3..];
    }
    out
}

/// The statements of a block, comments removed, text otherwise untouched.
fn statements(block: &str) -> Vec<String> {
    let text: String = block
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s};"))
        .collect()
}

fn is_ddl(stmt: &str) -> bool {
    stmt.trim_start()
        .to_ascii_uppercase()
        .starts_with("CREATE ")
}

/// Section statements split into (pre-P3 DDL, statements for a migrated database).
fn section(n: u32) -> (Vec<String>, Vec<String>) {
    blocks(n, "sql")
        .iter()
        .flat_map(|b| statements(b))
        .partition(|s| is_ddl(s))
}

/// A pre-P3 database holding the fixture, the spec's DDL run on it, then migrated.
async fn adopt(ddl: &[String], then: &str) -> TestDb {
    let db = TestDb::empty().await;
    Migrator::embedded()
        .run(&db.pool, Some(BASELINE_VERSION), &|_| {})
        .await
        .unwrap();
    seed_base(&db.pool).await;
    message(
        &db.pool,
        "thread_messages",
        "m1",
        "2026-01-05",
        r#"[{"userId": 123}]"#,
        "[]",
    )
    .await;
    for stmt in ddl {
        db.pool
            .execute(stmt.as_str())
            .await
            .unwrap_or_else(|e| panic!("spec DDL failed: {stmt}\n{e}"));
    }
    sqlx::raw_sql(then).execute(&db.pool).await.unwrap();
    Migrator::embedded()
        .run(&db.pool, None, &|_| {})
        .await
        .expect("migrate after the spec's DDL");
    db
}

async fn run_all(pool: &PgPool, stmts: &[String]) -> Vec<Vec<sqlx::postgres::PgRow>> {
    let mut out = Vec::new();
    for stmt in stmts {
        let rows = sqlx::raw_sql(stmt)
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("spec statement failed: {stmt}\n{e}"));
        out.push(rows);
    }
    out
}

#[test]
fn every_section_is_found() {
    assert_eq!(section(1).0.len(), 2, "§1 has two CREATE INDEX statements");
    assert_eq!(section(2).1.len(), 8);
    assert_eq!(section(3).0.len(), 2);
    assert_eq!(section(3).1.len(), 4);
    assert_eq!(section(5).0.len(), 1);
    assert_eq!(section(5).1.len(), 3);
    assert_eq!(section(6).1.len(), 2);
    assert_eq!(psql_commands().len(), 3);
}

/// §1: the GIN indexes, created as the spec writes them, then adopted; and
/// every index of the spec's table exists under its name once migrated.
#[tokio::test]
async fn section_1_indexes() {
    let (ddl, _) = section(1);
    let db = adopt(&ddl, "").await;
    let names = [
        "idx_thread_messages_thread_created",
        "idx_thread_messages_thread_not_deleted",
        "idx_thread_messages_sender_created",
        "idx_thread_messages_reactions_gin",
        "idx_thread_messages_readby_gin",
        "idx_client_usage_events_composite",
        "idx_client_usage_events_type_date",
        "idx_client_usage_events_user_date",
        "idx_user_sessions_user_active",
        "idx_user_sessions_expires",
        "idx_approvals_expense_status",
        "idx_approvals_approver_pending",
    ];
    for n in names {
        let valid: Option<bool> = sqlx::query_scalar(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = $1",
        )
        .bind(n)
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        assert_eq!(valid, Some(true), "index {n}");
    }
    let gin: String = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_thread_messages_readby_gin'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(gin.contains("USING gin (\"readBy\")"), "{gin}");
    // The GIN index answers the spec's containment query.
    let hits = common::count(
        &db.pool,
        r#"thread_messages WHERE "readBy" @> '[{"userId": 123}]'"#,
    )
    .await;
    assert_eq!(hits, 1);
}

/// §2: partition management and the spec's manual migration, as written.
#[tokio::test]
async fn section_2_partitioning() {
    let (ddl, stmts) = section(2);
    assert!(ddl.is_empty());
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    // Messages in the current month, an old month and far in the future (default partition).
    message(
        &db.pool,
        "thread_messages",
        "now",
        "now",
        r#"[{"userId": 123}]"#,
        "[]",
    )
    .await;
    message(
        &db.pool,
        "thread_messages",
        "old",
        "2019-03-01 12:00",
        "[]",
        "[]",
    )
    .await;
    message(
        &db.pool,
        "thread_messages",
        "future",
        "2099-01-01",
        "[]",
        "[]",
    )
    .await;

    let results = run_all(&db.pool, &stmts).await;
    // create_future_partitions: the current month and 3 ahead, for the
    // table and (messages only) its co-partitioned reads and reactions.
    assert_eq!(results[0].len(), 4 * 3);
    assert_eq!(results[1].len(), 4);
    assert_eq!(results[2].len(), 4);
    assert!(
        results[0].iter().all(|r| !r.get::<bool, _>("created")),
        "the migration premade 11 months"
    );
    let audit_created = results[2]
        .iter()
        .filter(|r| r.get::<bool, _>("created"))
        .count();
    assert_eq!(
        audit_created, 1,
        "audit logs premade 2 ahead; the third is new"
    );
    // drop_old_partitions: nothing is older than 12 (6) months yet.
    assert!(results[3].is_empty() && results[4].is_empty());
    // INSERT … SELECT * copied everything; the renames swapped the tables.
    assert_eq!(common::count(&db.pool, "thread_messages").await, 3);
    assert_eq!(common::count(&db.pool, "thread_messages_old").await, 3);
    let kind: String = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = 'thread_messages'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kind, "p");
    let in_default = common::count(&db.pool, "thread_messages_default").await;
    assert_eq!(
        in_default, 2,
        "2019 and 2099 have no partition and wait in the default one"
    );
}

/// §3: the spec's DDL adopted (rows kept), the migration functions, and both
/// query forms returning the same messages.
#[tokio::test]
async fn section_3_normalized_tables() {
    let (ddl, stmts) = section(3);
    let db = adopt(
        &ddl,
        "INSERT INTO message_reads (message_id, user_id) VALUES ('m1', 123);
         INSERT INTO message_reactions (message_id, user_id, emoji) VALUES ('m1', 123, '🎉');",
    )
    .await;
    // The spec-shaped tables were kept under a new name and the new ones are partitioned.
    assert!(exists(&db.pool, "message_reads_unpartitioned").await);
    assert!(exists(&db.pool, "message_reactions_unpartitioned").await);
    let kind: String = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = 'message_reads'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kind, "p");
    // Their rows were copied, with the message's month and tenant.
    let copied: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM message_reads WHERE message_id = 'm1' AND user_id = 123),
                (SELECT count(*) FROM message_reactions WHERE message_id = 'm1' AND emoji = '🎉')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(copied, (1, 1));
    assert_eq!(
        common::count(&db.pool, "message_reads_unpartitioned").await,
        1,
        "kept, never dropped"
    );

    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    message(
        &db.pool,
        "thread_messages",
        "a",
        "2026-01-05",
        r#"[{"userId": 123}, {"userId": 7}]"#,
        r#"[{"userId": 123, "emoji": "👍"}]"#,
    )
    .await;
    message(
        &db.pool,
        "thread_messages",
        "b",
        "2026-01-06",
        r#"[{"userId": 7}]"#,
        "[]",
    )
    .await;
    message(
        &db.pool,
        "thread_messages",
        "c",
        "2026-01-07",
        r#"[{"userId": 123, "readAt": "2026-01-07T10:00:00Z"}]"#,
        "[]",
    )
    .await;
    let results = run_all(&db.pool, &stmts).await;
    assert_eq!(results[0][0].get::<i64, _>("rows_inserted"), 4);
    assert_eq!(results[1][0].get::<i64, _>("rows_inserted"), 1);
    let ids = |rows: &Vec<sqlx::postgres::PgRow>| {
        let mut v: Vec<String> = rows.iter().map(|r| r.get::<String, _>("id")).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&results[2]), vec!["a", "c"], "JSONB form");
    assert_eq!(ids(&results[3]), ids(&results[2]), "normalised form agrees");
}

/// §5: the permission cache table and its functions.
#[tokio::test]
async fn section_5_permission_cache() {
    let (ddl, stmts) = section(5);
    adopt(&ddl, "").await;

    let db = TestDb::migrated().await;
    let results = run_all(&db.pool, &stmts).await;
    let first: Option<serde_json::Value> = results[0][0].get(0);
    assert_eq!(first, None, "nothing cached yet");
    let cached: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT get_cached_permission('perm:user:123')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(cached, Some(serde_json::json!({"role": "ADMIN"})));
    // An expired entry is invisible and cleaned up.
    sqlx::query("UPDATE permission_cache SET expires_at = expires_at - interval '1 hour'")
        .execute(&db.pool)
        .await
        .unwrap();
    let gone: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT get_cached_permission('perm:user:123')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(gone, None);
    let removed: i32 = sqlx::query_scalar("SELECT cleanup_expired_permission_cache()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(removed, 1);
}

/// §6: both views answer (without pg_stat_statements preloaded here,
/// v_slow_queries is empty and says why in a notice).
#[tokio::test]
async fn section_6_monitoring_views() {
    let (_, stmts) = section(6);
    let db = TestDb::migrated().await;
    seed_base(&db.pool).await;
    let results = run_all(&db.pool, &stmts).await;
    let problem: Option<String> = sqlx::query_scalar("SELECT bisman_stat_statements_problem()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    if problem.is_some() {
        assert!(results[0].is_empty());
    }
    let tables: Vec<String> = results[1]
        .iter()
        .map(|r| r.get::<String, _>("table_name"))
        .collect();
    assert!(tables.contains(&"users".to_string()), "{tables:?}");
    // Partitions are rolled up into their partitioned table.
    let row = results[1]
        .iter()
        .find(|r| r.get::<String, _>("table_name") == "thread_messages_partitioned")
        .unwrap();
    assert!(row.get::<i64, _>("partitions") >= 16);
}

fn psql_commands() -> Vec<String> {
    blocks(7, "bash")
        .iter()
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|line| {
            let start = line.find("-c \"")? + 4;
            let end = line.rfind('"')?;
            Some(line[start..end].to_string())
        })
        .collect()
}

/// §7: the cron lines' statements.
#[tokio::test]
async fn section_7_cron_statements() {
    let db = TestDb::migrated().await;
    for stmt in psql_commands() {
        sqlx::raw_sql(&stmt)
            .fetch_all(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{stmt}: {e}"));
    }
}
