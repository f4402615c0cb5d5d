//! The database every command works on: `DATABASE_URL`, or the embedded one.

use std::path::PathBuf;

use anyhow::Context;
use bisman_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use sqlx::PgPool;

/// Options choosing the database.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. Without it, bisman starts (or reuses) a private
    /// PostgreSQL from the machine's own binaries in `--data-dir`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Folder for the embedded PostgreSQL (used without DATABASE_URL).
    #[arg(long, env = "BISMAN_DATA_DIR", default_value = ".bisman")]
    pub data_dir: PathBuf,
    /// Loopback port for the embedded PostgreSQL (a free one when omitted).
    #[arg(long, env = "BISMAN_PG_PORT")]
    pub pg_port: Option<u16>,
    /// Maximum connections in the pool.
    #[arg(long, env = "BISMAN_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: u32,
}

/// An open database, and the embedded server behind it if there is one.
pub struct Database {
    /// The pool.
    pub pool: PgPool,
    /// The URL the pool connects to (may hold a password: never log it).
    pub url: String,
    embedded: Option<EmbeddedPostgres>,
}

impl DatabaseArgs {
    /// Connects, starting the embedded server when no URL was given.
    pub async fn open(&self) -> anyhow::Result<Database> {
        let (url, embedded) = match &self.database_url {
            Some(url) => (url.clone(), None),
            None => {
                let server = EmbeddedPostgres::start(&EmbeddedOptions {
                    data_dir: self.data_dir.clone(),
                    port: self.pg_port,
                })
                .await
                .context("starting the embedded PostgreSQL")?;
                server
                    .ensure_database("bisman")
                    .await
                    .context("creating the bisman database")?;
                eprintln!(
                    "embedded PostgreSQL on 127.0.0.1:{} (data in {})",
                    server.port(),
                    server.pgdata().display()
                );
                (server.url("bisman"), Some(server))
            }
        };
        let pool = bisman_db::connect(&url, self.db_pool_size)
            .await
            .context("connecting to PostgreSQL")?;
        Ok(Database {
            pool,
            url,
            embedded,
        })
    }
}

impl Database {
    /// Closes the pool and stops the embedded server if this process started it.
    pub async fn close(self) -> anyhow::Result<()> {
        self.pool.close().await;
        if let Some(server) = self.embedded {
            server
                .stop()
                .await
                .context("stopping the embedded PostgreSQL")?;
        }
        Ok(())
    }

    /// Whether this is the embedded server.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// The embedded server, if this is it.
    pub fn embedded(&self) -> Option<&EmbeddedPostgres> {
        self.embedded.as_ref()
    }
}
