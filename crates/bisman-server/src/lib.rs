//! Bisman's HTTP service: the ERP's hot paths over the session and
//! permission caches, with maintenance built in.
//!
//! - [`config`]: the typed configuration of `bisman serve` (flags and env).
//! - [`http`]: the axum router, one module per resource, under `/api/v1`,
//!   with the OpenAPI document at `/api/v1/openapi.json`, and the ops web
//!   page for super admins under `/ops`.
//! - [`error`]: the one error type and its mapping to HTTP statuses.
//! - [`extract`]: extractors with JSON error bodies, input validation.
//! - [`auth`]: the authenticated caller, password hashing, login limits.
//! - [`queries`]: SQL in small named functions, scoped by tenant.
//! - [`maintenance`]: the scheduler (premake, retention, cache cleanup,
//!   statistics snapshots) under advisory locks.
//! - [`metrics`]: request counters and latency histograms.
//! - [`routing`]: the pool router: reads to a replica that has replayed the
//!   caller's writes, everything else to the primary.
//! - [`demo`]: the demo tenant `bisman serve --demo` seeds.
//!
//! Caching is `bisman-cache`'s; partition lifecycle is `bisman-db`'s. This
//! crate owns HTTP and the glue.

pub mod auth;
pub mod config;
pub mod demo;
pub mod error;
pub mod extract;
pub mod http;
pub mod maintenance;
pub mod metrics;
pub mod queries;
pub mod routing;

pub use config::{CacheArgs, ReplicaArgs, ServeConfig};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use bisman_cache::Cache;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::auth::LoginLimiter;
use crate::http::{AppState, CacheHistory, Settings};
use crate::maintenance::{Job, JobContext, JobCounters, Scheduler};
use crate::metrics::HttpMetrics;
use crate::routing::DbRouter;

/// The service: its state, router and scheduler, before it listens.
pub struct Service {
    state: AppState,
    config: ServeConfig,
    instance: String,
}

impl Service {
    /// Builds the cache and the replica set from `config` and the state
    /// every handler shares.
    pub async fn new(config: &ServeConfig, pool: PgPool) -> anyhow::Result<Self> {
        let cache_config = config.cache_config()?;
        let db = DbRouter::start(pool.clone(), &config.replicas.options(), &cache_config)
            .context("starting the read replicas")?;
        let cache = Cache::new(cache_config, pool.clone())
            .await
            .context("starting the cache")?;
        Ok(Self::with_parts(config, pool, cache, db))
    }

    /// Builds the state around an existing cache (no replicas).
    pub fn with_cache(config: &ServeConfig, pool: PgPool, cache: Cache) -> Self {
        let db = DbRouter::primary_only(pool.clone());
        Self::with_parts(config, pool, cache, db)
    }

    /// Builds the state around an existing cache and pool router.
    pub fn with_parts(config: &ServeConfig, pool: PgPool, cache: Cache, db: DbRouter) -> Self {
        let instance = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let state = AppState {
            pool,
            db,
            cache,
            http_metrics: Arc::new(HttpMetrics::new()),
            limiter: Arc::new(LoginLimiter::new(
                config.login_window,
                config.login_max_failures,
                config.login_max_per_address,
            )),
            jobs: Arc::new(JobCounters::default()),
            cache_history: Arc::new(CacheHistory::default()),
            settings: Arc::new(Settings {
                trust_forwarded_for: config.trust_forwarded_for,
                body_limit: config.body_limit,
                request_timeout: config.request_timeout,
            }),
        };
        Self {
            state,
            config: config.clone(),
            instance,
        }
    }

    /// The shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The application (for in-process tests and for serving).
    pub fn router(&self) -> Router {
        http::router(self.state.clone())
    }

    /// The maintenance scheduler with the configured jobs and intervals.
    pub fn scheduler(&self) -> Scheduler {
        let c = &self.config;
        let jobs = [
            (Job::Premake, c.job_premake_every),
            (Job::Retention, c.job_retention_every),
            (Job::PermissionCacheCleanup, c.job_cache_cleanup_every),
            (Job::StatsSnapshot, c.job_stats_snapshot_every),
        ]
        .into_iter()
        .filter_map(|(job, every)| every.0.map(|d| (job, d)))
        .collect();
        Scheduler::new(
            self.state.pool.clone(),
            self.instance.clone(),
            c.maintenance_tick,
            jobs,
            JobContext {
                archive_dir: c.retention_archive_dir.clone(),
                keep_months: c.retention_keep_months,
            },
            self.state.jobs.clone(),
        )
    }

    /// Binds the configured address.
    pub async fn bind(self) -> anyhow::Result<BoundService> {
        let listener = tokio::net::TcpListener::bind(&self.config.bind)
            .await
            .with_context(|| format!("binding {}", self.config.bind))?;
        Ok(BoundService {
            addr: listener.local_addr()?,
            listener,
            service: self,
        })
    }
}

/// A service listening on its address.
pub struct BoundService {
    addr: SocketAddr,
    listener: tokio::net::TcpListener,
    service: Service,
}

impl BoundService {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets requests
    /// in flight finish (at most the shutdown grace), stops the scheduler
    /// (its advisory locks are released with its connections) and leaves
    /// the cache's instance registry.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let BoundService {
            addr,
            listener,
            service,
        } = self;
        let stop = CancellationToken::new();
        let trigger = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            trigger.cancel();
        });
        let grace = service.config.shutdown_grace;
        // The ops page's cache chart samples this instance's counters.
        tokio::spawn(
            service
                .state
                .cache_history
                .clone()
                .run(service.state.cache.clone(), stop.child_token()),
        );
        let scheduler = service
            .config
            .maintenance
            .then(|| tokio::spawn(service.scheduler().run(stop.child_token())));
        let app = service
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        tracing::info!(%addr, instance = %service.instance, "listening");
        let server =
            axum::serve(listener, app).with_graceful_shutdown(stop.clone().cancelled_owned());
        let served = tokio::select! {
            r = server => r.context("serving HTTP"),
            () = grace_elapsed(&stop, grace) => {
                tracing::warn!(?grace, "shutdown grace elapsed with requests still in flight");
                Ok(())
            }
        };
        stop.cancel();
        if let Some(handle) = scheduler {
            let abort = handle.abort_handle();
            if tokio::time::timeout(grace, handle).await.is_err() {
                tracing::warn!("a maintenance job outlived the shutdown grace; aborting it");
                abort.abort();
            }
        }
        service.state.cache.shutdown().await;
        tracing::info!("stopped");
        served
    }
}

async fn grace_elapsed(stop: &CancellationToken, grace: Duration) {
    stop.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// Serves `config.bind` until `shutdown` resolves (see [`BoundService::run`]).
pub async fn serve(
    config: &ServeConfig,
    pool: PgPool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Service::new(config, pool)
        .await?
        .bind()
        .await?
        .run(shutdown)
        .await
}
