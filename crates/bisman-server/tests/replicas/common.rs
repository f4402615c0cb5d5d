//! Service instances in process over a private primary with real hot
//! standbys, sharing a Redis key prefix; a small request helper; waits on
//! the instances' replica reports.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use bisman_db::replicas::{PrimaryReason, ReplicaReport, ReplicaState};
use bisman_server::{ServeConfig, Service};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const PASSWORD: &str = bisman_server::demo::DEMO_PASSWORD;

/// A generous bound for anything that waits on the machine.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// A response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

/// One in-process `bisman serve`.
pub struct Instance {
    pub service: Service,
    pub router: Router,
}

/// Options for an instance: the shared Redis under `prefix`, the standbys
/// at `replicas` (none: no replica), `max_lag`, the scheduler off.
pub fn config(prefix: &str, replicas: &[String], max_lag: Duration) -> ServeConfig {
    let mut c = ServeConfig {
        maintenance: false,
        ..ServeConfig::default()
    };
    c.cache.redis_url = Some(bisman_testkit::redis_url());
    c.cache.cache_prefix = prefix.to_string();
    c.replicas.replica_urls = replicas.to_vec();
    c.replicas.replica_max_lag = max_lag;
    c.replicas.replica_check_every = Duration::from_millis(50);
    c.replicas.replica_pool_size = 4;
    c
}

impl Instance {
    pub async fn start(config: &ServeConfig, primary: sqlx::PgPool) -> Instance {
        let service = Service::new(config, primary).await.expect("service");
        let router = service.router();
        Instance { service, router }
    }

    /// The instance's replica report (it has replicas).
    pub fn report(&self) -> ReplicaReport {
        self.service
            .state()
            .db
            .report()
            .expect("this instance has replicas")
    }

    /// Sends a request with a bearer token, optional JSON body and headers.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        call(&self.router, method, path, token, body, headers).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None, &[]).await
    }

    /// Logs a demo user in; the session token.
    pub async fn login(&self, email: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"tenant": "demo", "email": email, "password": PASSWORD})),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login {email}: {}", r.text);
        r.body["token"].as_str().unwrap().to_string()
    }

    /// Posts a message; (its id, the `Bisman-Lsn` the reply carried).
    pub async fn post(&self, token: &str, thread: &str, content: &str) -> (String, Option<String>) {
        let r = self
            .call(
                Method::POST,
                &format!("/api/v1/threads/{thread}/messages"),
                Some(token),
                Some(json!({ "content": content })),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let lsn = r
            .headers
            .get("bisman-lsn")
            .map(|v| v.to_str().unwrap().to_string());
        (r.body["id"].as_str().unwrap().to_string(), lsn)
    }

    /// The ids of the newest page of a thread, as `token` reads it (with
    /// extra headers).
    pub async fn page_ids(
        &self,
        token: &str,
        thread: &str,
        headers: &[(&str, &str)],
    ) -> Vec<String> {
        let r = self
            .call(
                Method::GET,
                &format!("/api/v1/threads/{thread}/messages?limit=50"),
                Some(token),
                None,
                headers,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Waits until the report satisfies `ok` (panics after [`PATIENCE`]).
    pub async fn wait_report(&self, what: &str, ok: impl Fn(&ReplicaReport) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let r = self.report();
            if ok(&r) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not {what} after {PATIENCE:?}: {r:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Sends a request to `router` with a bearer token, optional JSON body and
/// headers.
pub async fn call(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

/// Reads routed to replica `i`.
pub fn replica_reads(r: &ReplicaReport, i: usize) -> u64 {
    r.replicas[i].reads
}

/// Reads routed to any replica.
pub fn all_replica_reads(r: &ReplicaReport) -> u64 {
    r.replica_reads()
}

/// Reads the primary served for `reason`.
pub fn primary_reads(r: &ReplicaReport, reason: PrimaryReason) -> u64 {
    r.primary_reads
        .iter()
        .find(|p| p.reason == reason)
        .map_or(0, |p| p.reads)
}

/// Every replica usable.
pub fn all_usable(r: &ReplicaReport) -> bool {
    r.usable == r.configured
}

/// Replica `i` is in `state`.
pub fn state_is(i: usize, state: ReplicaState) -> impl Fn(&ReplicaReport) -> bool {
    move |r| r.replicas[i].state == state
}
