//! Test support shared by every crate's integration tests.
//!
//! Each test gets its own PostgreSQL database (so tests run in parallel
//! without interfering) and its own Redis key prefix. Databases are cloned
//! from a template that is migrated once per migration set and month, which
//! keeps a fully migrated database about as cheap as an empty one.
//!
//! For read replicas, [`ReplicatedPostgres`] runs a private primary with hot
//! standbys (real PostgreSQL processes, made like the embedded server).
//!
//! `BISMAN_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! names the server and a database to administer it from; `BISMAN_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`) the Redis.

mod proxy;
mod redis_server;
mod replicated;
mod serve;

pub use proxy::TcpProxy;
pub use redis_server::{RedisCluster, RedisServer};
pub use replicated::ReplicatedPostgres;
pub use serve::ServeProcess;

use std::time::{SystemTime, UNIX_EPOCH};

use bisman_db::migrate::{Migrator, MIGRATIONS};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};

/// Prefix of every database the test kit creates.
const PREFIX: &str = "bisman_t_";
/// Databases of crashed runs older than this are removed.
const STALE_AFTER_SECS: u64 = 6 * 3600;

/// The administration URL of the test server.
pub fn admin_url() -> String {
    std::env::var("BISMAN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The test Redis URL.
pub fn redis_url() -> String {
    std::env::var("BISMAN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis key prefix no other test uses.
pub fn redis_prefix() -> String {
    format!("bt:{}:", uuid::Uuid::new_v4().simple())
}

/// A database of its own for one test, dropped when this value is dropped.
pub struct TestDb {
    /// A pool on it.
    pub pool: PgPool,
    /// Its name.
    pub name: String,
    /// Its connection URL.
    pub url: String,
}

impl TestDb {
    /// A database with every migration applied.
    pub async fn migrated() -> TestDb {
        // Another checkout sharing the server may have dropped the template
        // between its check and the copy: make it again and retry.
        for _ in 0..5 {
            let template = ensure_template().await;
            if let Some(db) = Self::try_create(Some(&template)).await {
                return db;
            }
        }
        let template = ensure_template().await;
        Self::create(Some(&template)).await
    }

    /// An empty database (for migration tests).
    pub async fn empty() -> TestDb {
        Self::create(None).await
    }

    async fn create(template: Option<&str>) -> TestDb {
        Self::try_create(template)
            .await
            .expect("create test database")
    }

    /// A new database (from `template`), or `None` when PostgreSQL refused
    /// to make it (the template gone, say).
    async fn try_create(template: Option<&str>) -> Option<TestDb> {
        let mut admin = admin().await;
        remove_stale(&mut admin).await;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!(
            "{PREFIX}{secs}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        if let Err(e) = sqlx::raw_sql(&sql).execute(&mut admin).await {
            eprintln!("creating a test database: {e}");
            return None;
        }
        let url = database_url(&name);
        let pool = bisman_db::connect(&url, 8)
            .await
            .expect("connect to test database");
        Some(TestDb { pool, name, url })
    }

    /// A fresh pool on this database (for code that needs its own).
    pub async fn new_pool(&self, max: u32) -> PgPool {
        bisman_db::connect(&self.url, max)
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // thread with its own runtime removes the database.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// URL of `database` on the test server.
pub fn database_url(database: &str) -> String {
    let admin = admin_url();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let server = base
        .rsplit_once('/')
        .map(|(s, _)| s.to_string())
        .unwrap_or(base);
    format!("{server}/{database}{query}")
}

async fn admin() -> PgConnection {
    PgConnection::connect(&admin_url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot reach the test PostgreSQL at {} ({e}); set BISMAN_TEST_DATABASE_URL",
                admin_url()
            )
        })
}

/// The migrated template for this binary's migrations and the current
/// month (the initial partitions depend on it), built once.
async fn ensure_template() -> String {
    let fingerprint: String = MIGRATIONS
        .iter()
        .map(|m| m.checksum())
        .collect::<Vec<_>>()
        .concat();
    let digest = &hex::encode(Sha256::digest(fingerprint.as_bytes()))[..12];
    let month = bisman_db::partitions::Month::current();
    let name = format!(
        "bisman_tpl_{digest}_{:04}{:02}",
        month.year(),
        month.month()
    );

    let mut admin = admin().await;
    // One builder at a time, across test processes.
    sqlx::query("SELECT pg_advisory_lock(hashtext('bisman-testkit-template'))")
        .execute(&mut admin)
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{name}_building");
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::raw_sql(&format!("CREATE DATABASE {building}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let pool = bisman_db::connect(&database_url(&building), 2)
            .await
            .unwrap();
        Migrator::embedded()
            .run(&pool, None, &|_| {})
            .await
            .expect("migrate the test template");
        pool.close().await;
        // RENAME refuses a database anyone is connected to: a closed pool's
        // server processes end a moment after the close, and on a server
        // shared by several checkouts something else may look in. Nothing
        // else has business in a template being built: end such sessions.
        let mut renamed = Err(None);
        for _ in 0..100 {
            let _ = sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
            )
            .bind(&building)
            .execute(&mut admin)
            .await;
            match sqlx::raw_sql(&format!("ALTER DATABASE {building} RENAME TO {name}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => {
                    renamed = Ok(());
                    break;
                }
                Err(e) => renamed = Err(Some(e)),
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if let Err(e) = renamed {
            panic!("renaming the test template {building}: {e:?}");
        }
        // Older templates are no longer needed; but several checkouts (each
        // with its own migrations) may share the server, so the few newest
        // are kept for them, and half-built ones are their builders' to end.
        let old: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database
             WHERE datname LIKE 'bisman\\_tpl\\_%' AND datname NOT LIKE '%\\_building' AND datname <> $1
             ORDER BY oid DESC OFFSET 4",
        )
        .bind(&name)
        .fetch_all(&mut admin)
        .await
        .unwrap();
        for db in old {
            let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut admin)
                .await;
        }
    }
    sqlx::query("SELECT pg_advisory_unlock(hashtext('bisman-testkit-template'))")
        .execute(&mut admin)
        .await
        .unwrap();
    name
}

/// Removes test databases left behind by crashed runs.
async fn remove_stale(admin: &mut PgConnection) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'bisman\\_t\\_%'")
            .fetch_all(&mut *admin)
            .await
            .unwrap_or_default();
    for name in names {
        let created = name
            .trim_start_matches(PREFIX)
            .split('_')
            .next()
            .and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|c| now.saturating_sub(c) > STALE_AFTER_SECS) {
            let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}
