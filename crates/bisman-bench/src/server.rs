//! The PostgreSQL server the data sets live on.
//!
//! The user names any database on it (`DATABASE_URL`, or the embedded
//! server's); the data sets get databases of their own next to it, named by
//! this crate only (`bisman_bench_<layout>_<rows>`), so no input reaches
//! the DDL that creates or drops them.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::error::{BenchError, Result};

/// A server, reached through the user's database.
pub struct Server {
    base: PgConnectOptions,
    home: PgPool,
}

/// A database name this crate made: lowercase letters, digits and `_`.
fn checked(name: &str) -> Result<&str> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(BenchError::Setup(format!(
            "not a bench database name: {name:?}"
        )))
    }
}

impl Server {
    /// Connects to the database at `url` (kept for administration only).
    pub async fn connect(url: &str) -> Result<Server> {
        let base = PgConnectOptions::from_str(url)?
            .application_name("bisman-bench")
            .options([("timezone", "UTC")])
            .disable_statement_logging();
        let home = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(base.clone())
            .await?;
        Ok(Server { base, home })
    }

    /// Connection options for `database` on this server.
    pub fn options(&self, database: &str) -> PgConnectOptions {
        self.base.clone().database(database)
    }

    /// A pool on `database`: sessions in UTC and no statement timeout (a
    /// `DELETE` of a month may take minutes; that is what it measures).
    pub async fn pool(&self, database: &str, max: u32) -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(max.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(self.options(checked(database)?))
            .await?)
    }

    /// One connection on `database`, outside any pool.
    pub async fn connection(&self, database: &str) -> Result<PgConnection> {
        Ok(PgConnection::connect_with(&self.options(checked(database)?)).await?)
    }

    /// Whether `database` exists.
    pub async fn exists(&self, database: &str) -> Result<bool> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&self.home)
                .await?,
        )
    }

    /// Creates `database` (UTF-8, from `template0`).
    pub async fn create(&self, database: &str) -> Result<()> {
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'",
            checked(database)?
        );
        sqlx::raw_sql(&sql).execute(&self.home).await.map_err(|e| {
            BenchError::Setup(format!(
                "cannot create database {database} for the data set ({e}); \
                 the PostgreSQL role needs CREATEDB"
            ))
        })?;
        Ok(())
    }

    /// Drops `database` if it exists, ending its sessions.
    pub async fn drop_database(&self, database: &str) -> Result<()> {
        let sql = format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            checked(database)?
        );
        sqlx::raw_sql(&sql).execute(&self.home).await?;
        Ok(())
    }

    /// `SHOW setting` on the server.
    pub async fn setting(&self, name: &str) -> Result<String> {
        Ok(sqlx::query_scalar("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&self.home)
            .await?)
    }

    /// Closes the administration pool.
    pub async fn close(&self) {
        self.home.close().await;
    }
}

/// A session-level advisory lock held for as long as this value lives (its
/// own connection: dropping it ends the session and so the lock). Keeps two
/// runs from generating or measuring the same data set at once.
pub struct RunLock {
    conn: Option<PgConnection>,
}

impl RunLock {
    /// Takes the lock named `key` on the server, waiting for another run to
    /// end. It is held through the user's database, which a rebuild of a
    /// data set never drops.
    pub async fn take(server: &Server, key: &str) -> Result<RunLock> {
        let mut conn = PgConnection::connect_with(&server.base).await?;
        let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        if !free {
            tracing::info!(key, "another bench run holds this data set; waiting");
            sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
                .bind(key)
                .execute(&mut conn)
                .await?;
        }
        Ok(RunLock { conn: Some(conn) })
    }

    /// Releases the lock.
    pub async fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_plain_names() {
        assert!(super::checked("bisman_bench_before_1m").is_ok());
        for bad in ["", "a-b", "A", "x; DROP", "x\"y"] {
            assert!(super::checked(bad).is_err(), "{bad}");
        }
    }
}
