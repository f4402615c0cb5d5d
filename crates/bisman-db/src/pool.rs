//! Connection pools.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// The connection options of every Bisman session on `url`.
///
/// Sessions run in UTC so that naive timestamps (the ERP keeps UTC in them)
/// and `now()` agree, and every statement has a generous timeout so that a
/// stuck query cannot hold a connection forever.
pub fn session_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    Ok(options
        .application_name("bisman")
        .options([("timezone", "UTC"), ("statement_timeout", "60s")]))
}

/// Opens a pool on `url` with at most `max_connections` connections
/// (sessions as [`session_options`] describes).
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(session_options(url)?)
        .await
}
