//! Benchmark of the partition lifecycle (not a test): run with
//!
//! ```sh
//! cargo run --release -p bisman-db --example lifecycle_bench -- [ROWS]
//! ```
//!
//! On a scratch database of the test server (`BISMAN_TEST_DATABASE_URL`, as
//! the tests use), with `ROWS` generated usage events (default 1,000,000)
//! spread evenly over 12 months, it measures:
//!
//! 1. retention of one month: `DELETE` of the month from the flat table vs
//!    detach + drop of its partition (3 different months each; median);
//! 2. `partitions migrate client_usage_events`: fill throughput (rows/s),
//!    the longest fill batch (a share lock: writers go on) and the swap's
//!    exclusive lock on the source (what writers wait for);
//! 3. the same for `thread_messages` with one receipt per message (ROWS / 10
//!    messages): its swap re-validates the receipts' foreign key.
//!
//! Prints a Markdown table.

use std::time::{Duration, Instant};

use bisman_db::lifecycle::table_migration::{migrate, MigrateOptions};
use bisman_db::lifecycle::NoProgress;
use bisman_testkit::TestDb;
use sqlx::PgPool;

const TENANT: &str = "00000000-0000-0000-0000-000000000001";

#[tokio::main]
async fn main() {
    let rows: i64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROWS must be a number"))
        .unwrap_or(1_000_000);
    let db = TestDb::migrated().await;
    let pool = db.new_pool(4).await;
    generate(&pool, rows).await;

    let (delete_ms, vacuum_ms, drop_ms, month_rows) = retention(&pool).await;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| rows in the table | {rows} |");
    println!("| rows in one month | {month_rows} |");
    println!(
        "| retention of one month by `DELETE` (flat table, median of 3) | {delete_ms:.0} ms |"
    );
    println!(
        "| … plus the `VACUUM` that makes its space reusable (median of 3) | {vacuum_ms:.0} ms |"
    );
    println!("| retention of one month by detach + drop (median of 3) | {drop_ms:.1} ms |");

    // Back to a flat table of `rows` rows for the migration.
    generate(&pool, rows).await;
    let opts = MigrateOptions {
        batch_size: 50_000,
        ..Default::default()
    };
    let r = migrate(&pool, "client_usage_events", &opts, &NoProgress)
        .await
        .expect("migrate");
    let swap = r.swap.expect("swapped");
    println!(
        "| migrate fill throughput | {:.0} rows/s ({} rows in {:.1} s) |",
        r.rows_copied as f64 / r.fill_seconds,
        r.rows_copied,
        r.fill_seconds
    );
    println!(
        "| longest fill batch (share lock; writers not blocked) | {:.0} ms |",
        r.longest_batch_ms
    );
    println!(
        "| swap: exclusive lock held on the source | {:.0} ms |",
        swap.lock_held_ms
    );

    let messages = rows / 10;
    let (fill, lock) = messages_with_receipts(&pool, messages).await;
    println!("| migrate thread_messages ({messages} messages, 1 receipt each): fill | {fill:.0} rows/s |");
    println!(
        "| swap of thread_messages incl. re-pointing the receipts' foreign key | {lock:.0} ms |"
    );
}

/// `thread_messages` with one receipt per message, migrated: the swap has to
/// re-validate the receipts' foreign key against the partitioned table.
async fn messages_with_receipts(pool: &PgPool, n: i64) -> (f64, f64) {
    sqlx::raw_sql(&format!(
        r#"SET statement_timeout = 0;
           INSERT INTO users (tenant_id, email, password_hash) VALUES ('{TENANT}', 'bench@x', 'x');
           INSERT INTO threads (id, tenant_id, title, created_by)
           SELECT 'th', '{TENANT}', 'bench', id FROM users WHERE email = 'bench@x';
           INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "createdAt")
           SELECT md5(g::text), '{TENANT}', 'th', 1, 'hello',
                  date_trunc('month', now() AT TIME ZONE 'UTC') - interval '11 months' + g * (interval '365 days' / {n})
           FROM generate_series(1, {n}) g;
           INSERT INTO message_reads (tenant_id, message_id, message_created_at, thread_id, user_id)
           SELECT tenant_id, id, "createdAt", "threadId", 1 FROM thread_messages;"#
    ))
    .execute(pool)
    .await
    .expect("messages");
    vacuum(pool, "thread_messages").await;
    let r = migrate(
        pool,
        "thread_messages",
        &MigrateOptions::default(),
        &NoProgress,
    )
    .await
    .expect("migrate messages");
    (
        r.rows_copied as f64 / r.fill_seconds,
        r.swap.expect("swapped").lock_held_ms,
    )
}

/// A flat `client_usage_events` with `rows` rows over the last 12 months.
async fn generate(pool: &PgPool, rows: i64) {
    sqlx::raw_sql(&format!(
        "SET statement_timeout = 0;
         INSERT INTO tenants (id, slug, name) VALUES ('{TENANT}', 'bench', 'Bench') ON CONFLICT DO NOTHING;
         TRUNCATE client_usage_events;
         INSERT INTO client_usage_events (tenant_id, user_id, event_type, module, occurred_at)
         SELECT '{TENANT}', g % 500, (ARRAY['view', 'click', 'save'])[g % 3 + 1], 'sales',
                date_trunc('month', now()) - interval '11 months' + (g * (interval '365 days' / {rows}))
         FROM generate_series(1, {rows}) g;"
    ))
    .execute(pool)
    .await
    .expect("generate rows");
    vacuum(pool, "client_usage_events").await;
}

/// VACUUM cannot run in the implicit transaction of a multi-statement string.
async fn vacuum(pool: &PgPool, table: &str) {
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(&format!("VACUUM ANALYZE {table}"))
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("RESET statement_timeout")
        .execute(&mut *conn)
        .await
        .unwrap();
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// Three months removed from the flat table by DELETE, and the same three
/// months dropped from the partitioned copy.
async fn retention(pool: &PgPool) -> (f64, f64, f64, i64) {
    sqlx::raw_sql(
        "SET statement_timeout = 0;
         SELECT count(*) FROM bisman_ensure_partitions('client_usage_events',
             (date_trunc('month', now()) - interval '11 months')::date, 12);
         INSERT INTO client_usage_events_partitioned SELECT * FROM client_usage_events;",
    )
    .execute(pool)
    .await
    .expect("partitioned copy");
    vacuum(pool, "client_usage_events_partitioned").await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await
        .unwrap();
    let month_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM client_usage_events
         WHERE occurred_at >= date_trunc('month', now()) - interval '10 months'
           AND occurred_at < date_trunc('month', now()) - interval '9 months'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    let (mut deletes, mut vacuums, mut drops) = (Vec::new(), Vec::new(), Vec::new());
    for back in [10, 9, 8] {
        let t = Instant::now();
        sqlx::query(&format!(
            "DELETE FROM client_usage_events
             WHERE occurred_at >= date_trunc('month', now()) - interval '{back} months'
               AND occurred_at < date_trunc('month', now()) - interval '{} months'",
            back - 1
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        deletes.push(t.elapsed());
        let t = Instant::now();
        sqlx::query("VACUUM client_usage_events")
            .execute(&mut *conn)
            .await
            .unwrap();
        vacuums.push(t.elapsed());
        let part: String = sqlx::query_scalar(&format!(
            "SELECT bisman_partition_name('client_usage_events', (date_trunc('month', now()) - interval '{back} months')::date)"
        ))
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        let t = Instant::now();
        sqlx::raw_sql(&format!(
            "ALTER TABLE client_usage_events_partitioned DETACH PARTITION {part}; DROP TABLE {part};"
        ))
        .execute(&mut *conn)
        .await
        .unwrap();
        drops.push(t.elapsed());
    }
    sqlx::raw_sql("TRUNCATE client_usage_events_partitioned; TRUNCATE client_usage_events;")
        .execute(&mut *conn)
        .await
        .unwrap();
    (median(deletes), median(vacuums), median(drops), month_rows)
}
