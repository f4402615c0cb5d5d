//! The migrator: fresh databases, populated pre-P3 databases, running twice,
//! running concurrently, interrupted index builds, and refusing databases it
//! does not understand.

mod common;

use bisman_db::migrate::{MigrateError, MigrationState, BASELINE_VERSION};
use bisman_db::Migrator;
use bisman_testkit::TestDb;
use common::*;
use sqlx::PgPool;

const TABLES: &[&str] = &[
    "tenants",
    "users",
    "super_admins",
    "roles",
    "role_permissions",
    "user_roles",
    "user_sessions",
    "threads",
    "thread_messages",
    "client_usage_events",
    "expenses",
    "approvals",
    "audit_logs",
];

async fn migrate(pool: &PgPool, target: Option<i32>) -> Result<Vec<i32>, MigrateError> {
    Migrator::embedded().run(pool, target, &|_| {}).await
}

async fn counts(pool: &PgPool) -> Vec<i64> {
    let mut out = Vec::new();
    for t in TABLES {
        out.push(count(pool, t).await);
    }
    out
}

/// An ERP's worth of rows in every baseline table.
async fn populate(pool: &PgPool) {
    let user = seed_base(pool).await;
    sqlx::raw_sql(&format!(
        r#"
        INSERT INTO super_admins (tenant_id, user_id) SELECT tenant_id, id FROM users WHERE id = {user};
        INSERT INTO roles (tenant_id, name) SELECT id, 'Staff' FROM tenants;
        INSERT INTO role_permissions (role_id, page_id) SELECT r.id, p.id FROM roles r, pages p;
        INSERT INTO user_roles (user_id, role_id) SELECT {user}, id FROM roles;
        INSERT INTO user_sessions (tenant_id, user_id, user_type, token_hash, expires_at)
            SELECT tenant_id, id, user_type, md5(id::text) || md5('x'), now() + interval '1 hour' FROM users;
        INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "readBy", "createdAt")
            SELECT 'm' || g, (SELECT id FROM tenants), 'th1', {user}, 'msg ' || g,
                   jsonb_build_array(jsonb_build_object('userId', g % 7 + 1)),
                   (now() AT TIME ZONE 'UTC') - make_interval(days => g)
            FROM generate_series(1, 500) g;
        INSERT INTO client_usage_events (tenant_id, user_id, event_type, occurred_at)
            SELECT (SELECT id FROM tenants), {user}, 'view', now() - make_interval(mins => g) FROM generate_series(1, 300) g;
        INSERT INTO expenses (tenant_id, submitted_by, amount) SELECT id, {user}, 12.5 FROM tenants;
        INSERT INTO approvals (tenant_id, expense_id, approver_id) SELECT tenant_id, id, {user} FROM expenses;
        INSERT INTO audit_logs (tenant_id, action, entity_type) SELECT id, 'create', 'expense' FROM tenants;
        "#
    ))
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn fresh_database_then_again() {
    let db = TestDb::empty().await;
    let first = migrate(&db.pool, None).await.unwrap();
    assert_eq!(first.len(), Migrator::embedded().migrations().len());
    assert!(
        migrate(&db.pool, None).await.unwrap().is_empty(),
        "nothing to do the second time"
    );
    let status = Migrator::embedded().status(&db.pool).await.unwrap();
    assert!(status.iter().all(|s| s.state == MigrationState::Applied));
}

#[tokio::test]
async fn populated_pre_p3_database_keeps_every_row() {
    let db = TestDb::empty().await;
    migrate(&db.pool, Some(BASELINE_VERSION)).await.unwrap();
    populate(&db.pool).await;
    let before = counts(&db.pool).await;
    let applied = migrate(&db.pool, None).await.unwrap();
    assert_eq!(applied[0], 12);
    assert!(applied.iter().all(|v| *v > BASELINE_VERSION));
    assert_eq!(counts(&db.pool).await, before);
    let invalid: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_index WHERE NOT indisvalid")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(invalid, 0);
    // The live data can be normalised right away.
    let inserted: i64 =
        sqlx::query_scalar("SELECT rows_inserted FROM migrate_readby_to_normalized()")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(inserted, 500);
}

#[tokio::test]
async fn erp_schema_without_a_bisman_ledger_is_adopted() {
    // An ERP that has these tables from its own tooling: no ledger of ours.
    let db = TestDb::empty().await;
    migrate(&db.pool, Some(BASELINE_VERSION)).await.unwrap();
    populate(&db.pool).await;
    sqlx::raw_sql("DROP TABLE bisman_schema_migrations")
        .execute(&db.pool)
        .await
        .unwrap();
    let before = counts(&db.pool).await;
    let applied = migrate(&db.pool, None).await.unwrap();
    assert_eq!(
        applied.len(),
        Migrator::embedded().migrations().len(),
        "baseline re-applied as no-ops, then P3"
    );
    assert_eq!(counts(&db.pool).await, before);
}

#[tokio::test]
async fn concurrent_migrators_take_turns() {
    let db = TestDb::empty().await;
    let (a, b) = tokio::join!(migrate(&db.pool, None), migrate(&db.pool, None));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), Migrator::embedded().migrations().len());
    assert!(a.is_empty() || b.is_empty());
}

#[tokio::test]
async fn an_index_left_invalid_is_rebuilt() {
    let db = TestDb::empty().await;
    migrate(&db.pool, Some(BASELINE_VERSION)).await.unwrap();
    populate(&db.pool).await;
    // A concurrent build that fails leaves an INVALID index behind; IF NOT
    // EXISTS alone would keep it forever.
    let failed = sqlx::raw_sql(
        r#"CREATE UNIQUE INDEX CONCURRENTLY idx_thread_messages_thread_created ON thread_messages ("threadId")"#,
    )
    .execute(&db.pool)
    .await;
    assert!(failed.is_err());
    let seen = std::sync::Mutex::new(Vec::new());
    Migrator::embedded()
        .run(&db.pool, None, &|p| {
            if let bisman_db::migrate::Progress::RebuildingInvalidIndex { index } = p {
                seen.lock().unwrap().push(index);
            }
        })
        .await
        .unwrap();
    assert_eq!(
        seen.into_inner().unwrap(),
        ["idx_thread_messages_thread_created"]
    );
    let (valid, unique): (bool, bool) = sqlx::query_as(
        "SELECT i.indisvalid, i.indisunique FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE c.relname = 'idx_thread_messages_thread_created'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(valid && !unique);
}

#[tokio::test]
async fn refuses_a_database_from_a_newer_binary() {
    let db = TestDb::empty().await;
    migrate(&db.pool, None).await.unwrap();
    sqlx::query("INSERT INTO bisman_schema_migrations (version, name, checksum, duration_ms) VALUES (999, 'from_the_future', 'x', 1)")
        .execute(&db.pool)
        .await
        .unwrap();
    let err = migrate(&db.pool, None).await.unwrap_err();
    assert!(matches!(
        err,
        MigrateError::UnknownMigration { version: 999, .. }
    ));
    assert!(
        err.to_string().contains("migration 999 (from_the_future)"),
        "{err}"
    );
    let status = Migrator::embedded().status(&db.pool).await.unwrap();
    assert_eq!(status.last().unwrap().state, MigrationState::Unknown);
}

#[tokio::test]
async fn refuses_a_migration_applied_from_different_sql() {
    let db = TestDb::empty().await;
    migrate(&db.pool, None).await.unwrap();
    sqlx::query("UPDATE bisman_schema_migrations SET checksum = 'tampered' WHERE version = 3")
        .execute(&db.pool)
        .await
        .unwrap();
    let err = migrate(&db.pool, None).await.unwrap_err();
    assert!(
        matches!(err, MigrateError::ChecksumMismatch { version: 3, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_target_is_an_error() {
    let db = TestDb::empty().await;
    assert!(matches!(
        migrate(&db.pool, Some(77)).await,
        Err(MigrateError::UnknownTarget(77))
    ));
    assert!(!exists(&db.pool, "tenants").await, "nothing applied");
}
