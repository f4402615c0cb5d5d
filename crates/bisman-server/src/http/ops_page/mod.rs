//! The ops web page: `/ops`, for super admins holding `admin/ops`.
//!
//! Server-rendered HTML with a little script (relative times, an
//! auto-refresh switch), served by `bisman serve` itself with its assets
//! compiled in: it works with no network beyond the service.
//!
//! | route | what |
//! |---|---|
//! | `GET /ops` | [`overview`]: database and cache health, partition warnings, maintenance runs |
//! | `GET /ops/partitions`, `POST /ops/partitions/premake` | [`partitions`]: per managed table, and "premake now" |
//! | `GET /ops/slow-queries?window=` | [`slow_queries`]: top statements by total and mean time |
//! | `GET /ops/table-access` | [`table_access`]: sequential vs index scans, hints |
//! | `GET /ops/cache` | [`cache`]: hit rates over time, counters, Redis keyspace |
//! | `GET /ops/replicas` | [`replicas`]: read replicas' state, lag and reads routed |
//! | `GET/POST /ops/login`, `POST /ops/logout` | [`login`] |
//! | `GET /ops/assets/ops.css`, `/ops/assets/ops.js` | [`assets`] |
//!
//! The session lives in an `HttpOnly`, `SameSite=Strict` cookie scoped to
//! `/ops`; every POST needs the session's CSRF token and a same-origin
//! `Origin` ([`auth`] explains the design). Logged out, a page redirects to
//! the login form; logged in without `admin/ops` as a super admin, it is a
//! 403 page. This module reads through `queries::ops_page`, the lifecycle
//! library and the cache; it changes nothing but sessions and, through the
//! premake job, partitions.

mod assets;
mod auth;
mod cache;
mod chart;
mod error;
mod history;
mod html;
mod layout;
mod login;
mod overview;
mod partitions;
mod replicas;
mod slow_queries;
mod table_access;
mod widgets;

pub use history::{CacheHistory, Sample};

use axum::routing::{get, post};
use axum::Router;

use super::AppState;

/// The page's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops", get(overview::page))
        .route("/ops/partitions", get(partitions::page))
        .route("/ops/partitions/premake", post(partitions::premake_now))
        .route("/ops/slow-queries", get(slow_queries::page))
        .route("/ops/table-access", get(table_access::page))
        .route("/ops/cache", get(cache::page))
        .route("/ops/replicas", get(replicas::page))
        .route("/ops/login", get(login::form).post(login::submit))
        .route("/ops/logout", post(login::logout))
        .route("/ops/assets/ops.css", get(assets::css))
        .route("/ops/assets/ops.js", get(assets::js))
}
