//! Bisman's HTTP service.
//!
//! - [`config`]: the typed configuration of `bisman serve`.
//! - [`http`]: the axum router, one module per resource.
//! - [`auth`]: password hashing.
//! - [`demo`]: the demo tenant `bisman serve --demo` seeds.
//!
//! The service owns HTTP concerns only: SQL lives in `bisman-db`, caching in
//! `bisman-cache`.

pub mod auth;
pub mod config;
pub mod demo;
pub mod http;

pub use config::ServeConfig;

use std::net::SocketAddr;

use anyhow::Context;
use sqlx::PgPool;

/// Serves HTTP on `config.bind` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn serve(
    config: &ServeConfig,
    pool: PgPool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(&config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener.local_addr()?;
    let app = http::router(http::AppState { pool });
    tracing::info!(%addr, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    Ok(addr)
}
