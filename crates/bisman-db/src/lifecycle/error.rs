//! The one error type of the lifecycle operations.

use std::path::PathBuf;

/// What can go wrong while managing partitions.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The table is not in `bisman_partitioned_tables`.
    #[error("unknown partitioned table {name:?}; managed tables: {known}")]
    UnknownTable {
        /// What was asked for.
        name: String,
        /// The managed tables, comma separated.
        known: String,
    },
    /// The input does not make sense (a clear message says why).
    #[error("{0}")]
    Invalid(String),
    /// An archive file is missing, truncated, corrupt or does not match its manifest.
    #[error("archive {path}: {reason}")]
    BadArchive {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The table migration found the copy differs from the source.
    #[error("{table}: the copy differs from the source ({detail}); nothing was swapped")]
    Mismatch {
        /// The base table.
        table: String,
        /// Counts and checksums.
        detail: String,
    },
    /// A lock could not be had within the lock timeout, even after retries.
    #[error("{what}: could not get the lock within {timeout_ms} ms after {attempts} attempts; writers were not blocked for longer than that. Try again later or raise --lock-timeout")]
    LockTimeout {
        /// What needed the lock.
        what: String,
        /// The timeout per attempt.
        timeout_ms: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest could not be read or written.
    #[error("manifest {path}: {source}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The database refused something.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl LifecycleError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }

    /// Whether this is PostgreSQL's `lock_not_available` (lock_timeout
    /// expired) or a deadlock: both are worth another attempt.
    pub(crate) fn is_lock_timeout(err: &sqlx::Error) -> bool {
        err.as_database_error()
            .and_then(|e| e.code())
            .is_some_and(|c| c == "55P03" || c == "40P01")
    }
}
