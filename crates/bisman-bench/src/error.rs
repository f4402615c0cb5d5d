//! The errors of a benchmark run.

use std::path::PathBuf;

/// Why a benchmark run stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A PostgreSQL statement failed.
    #[error("PostgreSQL: {0}")]
    Db(#[from] sqlx::Error),
    /// Migrating a data set's database failed.
    #[error("migrating {database}: {source}")]
    Migrate {
        /// The database.
        database: String,
        /// What the migrator said.
        #[source]
        source: bisman_db::MigrateError,
    },
    /// A Redis command failed.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The cache under test failed.
    #[error("cache: {0}")]
    Cache(#[from] bisman_cache::CacheError),
    /// A peer library failed.
    #[error("peer {peer}: {message}")]
    Peer {
        /// Which peer.
        peer: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The set-up is not usable (a message for the operator).
    #[error("{0}")]
    Setup(String),
    /// Writing an output file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Drawing the chart failed.
    #[error("drawing the chart: {0}")]
    Chart(String),
    /// Encoding the JSON report failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Results of this crate.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
