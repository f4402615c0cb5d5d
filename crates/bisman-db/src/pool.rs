//! Connection pools.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Opens a pool on `url` with at most `max_connections` connections.
///
/// Sessions run in UTC so that naive timestamps (the ERP keeps UTC in them)
/// and `now()` agree, and every statement has a generous timeout so that a
/// stuck query cannot hold a connection forever.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let options: PgConnectOptions = url.parse()?;
    let options = options
        .application_name("bisman")
        .options([("timezone", "UTC"), ("statement_timeout", "60s")]);
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
}
