//! The HTTP API: one module per resource, each with its `router()`, joined
//! here under `/api/v1` with the OpenAPI document, and wrapped in the layers
//! every request passes (request id, tracing, error bodies, timeout, body
//! limit, metrics). The ops web page (`ops_page`, HTML under `/ops`) is
//! merged beside them.

mod admin;
mod approvals;
mod auth;
mod health;
mod messaging;
mod ops;
mod ops_page;
mod permissions;
mod usage;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bisman_cache::Cache;
use sqlx::PgPool;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::auth::LoginLimiter;
use crate::error::ApiError;
use crate::maintenance::JobCounters;
use crate::metrics::{self, HttpMetrics, Observe};
use crate::routing::{self, DbRouter};

pub use ops_page::{CacheHistory, Sample as CacheSample};

/// Settings handlers read at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Take client addresses from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Largest request body, bytes.
    pub body_limit: usize,
    /// Request timeout.
    pub request_timeout: Duration,
}

/// What every handler can reach (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// The database (the primary: writes, transactions, permission and
    /// session loads).
    pub pool: PgPool,
    /// The primary and the read replicas: read-heavy handlers route through it.
    pub db: DbRouter,
    /// Session and permission caches.
    pub cache: Cache,
    /// Request metrics.
    pub http_metrics: Arc<HttpMetrics>,
    /// Login rate limiting.
    pub limiter: Arc<LoginLimiter>,
    /// Maintenance job counters of this process.
    pub jobs: Arc<JobCounters>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Cache counters over time, for the ops page's chart.
    pub cache_history: Arc<CacheHistory>,
}

/// The OpenAPI document's frame; the paths come from the resource routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Bisman",
        description = "The BISMAN ERP's hot paths: sessions, permissions, messaging, usage events, approvals and operations.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Log in and out, sessions, passwords"),
        (name = "permissions", description = "Effective permissions and checks"),
        (name = "admin", description = "Roles, user roles, super admins (audited)"),
        (name = "messaging", description = "Threads, messages, read receipts, reactions"),
        (name = "usage", description = "Client usage events"),
        (name = "approvals", description = "Expense approvals"),
        (name = "ops", description = "Operations (super admins)"),
        (name = "health", description = "Liveness, readiness, metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes and their OpenAPI document.
fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .merge(auth::router())
        .merge(permissions::router())
        .merge(admin::router())
        .merge(messaging::router())
        .merge(usage::router())
        .merge(approvals::router())
        .merge(ops::router());
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(health::router())
        .split_for_parts()
}

/// The OpenAPI document of the service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The whole application with its layers.
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api();
    let doc: Arc<str> = doc.to_json().unwrap_or_else(|_| "{}".into()).into();
    let settings = state.settings.clone();
    let http_metrics = state.http_metrics.clone();
    let db = state.db.clone();
    routes
        .merge(ops_page::router())
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        doc.to_string(),
                    )
                }
            }),
        )
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
        // One `layer` call (each call boxes every route once more). Outer
        // to inner: request id, tracing, timeout + error bodies + metrics
        // (per route, so the matched path is known), the write positions
        // read-your-writes needs (with replicas only), body limit, panics
        // turned into 500s.
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(make_span)
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(axum::middleware::from_fn_with_state(
                    Arc::new(Observe {
                        metrics: http_metrics,
                        timeout: settings.request_timeout,
                    }),
                    metrics::observe,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    db,
                    routing::writes::remember_writes,
                ))
                .layer(axum::extract::DefaultBodyLimit::max(settings.body_limit))
                .layer(CatchPanicLayer::custom(panic_response)),
        )
}

/// Request ids: a random prefix per process and a counter (unique without
/// a system call per request, unlike random UUIDs).
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        Self {
            prefix: uuid::Uuid::new_v4().simple().to_string()[..12].into(),
            next: Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// The span of one request: its id, method and path (never the query, the
/// headers or the body, which may carry secrets).
fn make_span(request: &Request<Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a handler panicked");
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}
