//! The cache's error type.

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Neither the cache nor PostgreSQL could answer. Callers map this to
    /// 503: a permission check that cannot be answered is never a grant.
    #[error("permission and session data cannot be read right now: {0}")]
    Unavailable(String),
    /// PostgreSQL failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The shared store (Redis, the PostgreSQL table) failed.
    #[error("cache store: {0}")]
    Store(String),
    /// Invalid configuration (`REDIS_URL` and friends).
    #[error("cache configuration: {0}")]
    Config(String),
    /// A cached value could not be decoded (a bug or a foreign writer).
    #[error("cached value is malformed: {0}")]
    Decode(#[from] serde_json::Error),
}

impl From<redis::RedisError> for CacheError {
    fn from(e: redis::RedisError) -> Self {
        CacheError::Store(e.to_string())
    }
}

/// Shorthand.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;
