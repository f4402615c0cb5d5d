//! The load driver's errors.

/// What can stop the load driver from starting or finishing.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A `bisman serve` process could not be started.
    #[error("starting `bisman serve`: {0}")]
    Spawn(String),
    /// A request needed to set the load up failed.
    #[error("setting up the load: {0}")]
    Setup(String),
    /// A configuration value is not usable.
    #[error("invalid load configuration: {0}")]
    Config(String),
    /// Looking up acknowledged writes failed.
    #[error("verifying writes: {0}")]
    Database(#[from] sqlx::Error),
}
