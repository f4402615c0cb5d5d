//! The HTTP router: one module per resource, each with its `router()`.

mod health;

use axum::Router;
use sqlx::PgPool;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    Router::new().merge(health::router()).with_state(state)
}
