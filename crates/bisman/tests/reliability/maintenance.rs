//! An instance SIGKILLed in the middle of a maintenance job, under load.
//!
//! Sixty thousand usage events of a month two ahead wait in the default
//! partition (their month was never made), so premake copies them into a
//! new month table with its indexes, then, under a short lock, deletes them
//! from the default partition and attaches the month, all in one
//! transaction. The test holds a lock that stops that delete, so the
//! instance is killed in the middle of making the month: nothing of it is
//! visible, and every row is still in the default partition. Then: the
//! job's advisory lock is gone with the dead instance, the other instance
//! runs the job at once (not an interval later), the month ends attached
//! with every row, nothing is left detached, and the load saw no failure.

use std::time::Instant;

use bisman_load::{verify_writes, Load};
use bisman_testkit::TestDb;
use sqlx::{Connection, PgConnection, PgPool};

use crate::harness::*;

const ROWS: i64 = 60_000;

async fn scalar<T>(pool: &PgPool, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Polls `sql` (a boolean) until it holds.
async fn wait_for(pool: &PgPool, what: &str, sql: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !scalar::<bool>(pool, sql).await {
        assert!(Instant::now() < deadline, "not {what} after {PATIENCE:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_killed_during_a_maintenance_job() {
    let _one = ONE_AT_A_TIME.lock().await;
    let db = TestDb::migrated().await;
    bisman_server::demo::seed(&db.pool).await.unwrap();
    let pool = &db.pool;
    let month = "(bisman_utc_month() + interval '2 months')::date";
    let part: String = scalar(
        pool,
        &format!("SELECT bisman_partition_name('client_usage_events', {month})"),
    )
    .await;
    let default: String = scalar(
        pool,
        "SELECT partdefid::regclass::text FROM pg_partitioned_table
         WHERE partrelid = 'client_usage_events_partitioned'::regclass",
    )
    .await;
    sqlx::raw_sql(&format!(
        "DROP TABLE IF EXISTS {part};
         INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
         SELECT t.id, 'kill-test', {month} + interval '10 days' + g * interval '1 second'
         FROM tenants t, generate_series(1, {ROWS}) g WHERE t.slug = 'demo';"
    ))
    .execute(pool)
    .await
    .unwrap();

    // Moving the rows out of the default partition will wait on this lock.
    let mut blocker = PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(&format!("BEGIN; LOCK TABLE {default} IN SHARE MODE"))
        .execute(&mut blocker)
        .await
        .unwrap();

    let prefix = bisman_testkit::redis_prefix();
    let env = [
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", bisman_testkit::redis_url()),
        ("BISMAN_CACHE_PREFIX", prefix),
        ("BISMAN_MAINTENANCE", "true".into()),
        ("BISMAN_MAINTENANCE_TICK", "1s".into()),
        ("BISMAN_JOB_PREMAKE_EVERY", "1h".into()),
        ("BISMAN_JOB_RETENTION_EVERY", "off".into()),
        ("BISMAN_JOB_CACHE_CLEANUP_EVERY", "off".into()),
        ("BISMAN_JOB_STATS_SNAPSHOT_EVERY", "off".into()),
    ];
    let logs = log_dir("maintenance");
    let mut first = Cluster::start(1, &env, &logs.join("first"));
    wait_for(
        pool,
        "premake waiting to move the rows",
        &format!(
            "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                            WHERE NOT l.granted AND l.relation = '{default}'::regclass
                              AND a.application_name = 'bisman' AND a.query LIKE '%bisman_premake_month%')"
        ),
    )
    .await;
    let invisible: bool = scalar(pool, &format!("SELECT to_regclass('{part}') IS NULL")).await;
    assert!(invisible, "nothing of the month being made is visible yet");
    let waiting: i64 = scalar(
        pool,
        &format!("SELECT count(*) FROM {default} WHERE event_type = 'kill-test'"),
    )
    .await;
    assert_eq!(
        waiting, ROWS,
        "every row is still where the application sees it"
    );

    let second = Cluster::start(1, &env, &logs.join("second"));
    let mut targets = first.targets();
    targets.extend(second.targets());
    let load = Load::start(load_config(targets)).await.unwrap();
    let n = per_phase();
    let_through(&load, n).await;

    // Out of rotation (as a load balancer's health check would), then killed.
    load.set_up(0, false);
    first.instances[0].kill().unwrap();
    load.phase("first instance killed", true);
    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();
    wait_for(
        pool,
        "premake completed by the other instance",
        "SELECT EXISTS (SELECT 1 FROM bisman_job_runs WHERE job = 'premake' AND outcome = 'ok')",
    )
    .await;
    let_through(&load, n).await;
    let acked = load.acknowledged();
    let mut report = load.stop().await;
    report.writes_check(verify_writes(pool, "demo", &acked).await.unwrap());
    check_common("instance killed during maintenance", &report);
    assert_eq!(report.writes.lost(), 0, "acknowledged writes lost");

    let runs: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT instance, outcome, detail FROM bisman_job_runs WHERE job = 'premake' ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    eprintln!("premake runs: {runs:?}");
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[0].1, "failed");
    assert!(runs[0].2.as_deref().unwrap_or("").starts_with("abandoned"));
    assert_eq!(runs[1].1, "ok");
    assert_ne!(runs[0].0, runs[1].0, "the other instance completed it");

    let advisory: i64 = scalar(
        pool,
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
         WHERE l.locktype = 'advisory' AND d.datname = current_database()",
    )
    .await;
    assert_eq!(advisory, 0, "no advisory lock is held");
    let attached: bool = scalar(
        pool,
        &format!(
            "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass('{part}')
                            AND inhparent = 'client_usage_events_partitioned'::regclass)"
        ),
    )
    .await;
    assert!(attached, "the month is attached");
    let in_month: i64 = scalar(pool, &format!("SELECT count(*) FROM {part}")).await;
    let total: i64 = scalar(
        pool,
        "SELECT count(*) FROM client_usage_events_partitioned WHERE event_type = 'kill-test'",
    )
    .await;
    let left: i64 = scalar(
        pool,
        &format!("SELECT count(*) FROM {default} WHERE event_type = 'kill-test'"),
    )
    .await;
    assert_eq!(
        (in_month, total, left),
        (ROWS, ROWS, 0),
        "every row moved once"
    );
    let detached: i64 = scalar(
        pool,
        "SELECT count(*) FROM pg_class c WHERE c.relkind = 'r'
           AND c.relname ~ '^(client_usage_events|thread_messages|audit_logs|message_reads|message_reactions)_p[0-9]{4}_[0-9]{2}$'
           AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)",
    )
    .await;
    assert_eq!(detached, 0, "no month table left detached");
}
