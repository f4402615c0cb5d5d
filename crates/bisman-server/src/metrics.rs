//! Request metrics: counts by route, method and status class, and latency
//! histograms by route, kept in atomics and written out in Prometheus text
//! by `/metrics` (which adds the cache, pool and job figures).
//!
//! Labels stay low-cardinality: the route is axum's matched path
//! (`/api/v1/threads/{id}/messages`, never the id), `unmatched` otherwise;
//! statuses are classes (`2xx` … `5xx`).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use dashmap::DashMap;

use crate::error::{ensure_json, ApiError};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Counters of one route.
#[derive(Default)]
struct RouteStats {
    /// Method × status class.
    counts: [[AtomicU64; 5]; 6],
    /// Cumulative-later: one counter per bucket (+Inf last).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// The service's request metrics.
#[derive(Default)]
pub struct HttpMetrics {
    routes: DashMap<String, Arc<RouteStats>>,
    in_flight: AtomicI64,
}

impl HttpMetrics {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn route(&self, route: &str) -> Arc<RouteStats> {
        if let Some(stats) = self.routes.get(route) {
            return stats.clone();
        }
        self.routes.entry(route.to_string()).or_default().clone()
    }

    /// Records one finished request.
    pub fn record(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        let stats = self.route(route);
        let m = METHODS[..5]
            .iter()
            .position(|name| *name == method.as_str())
            .unwrap_or(5);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        stats.counts[m][class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        stats.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        stats.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Requests being served now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Appends the request metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut routes: Vec<(String, Arc<RouteStats>)> = self
            .routes
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        out.push_str(
            "# HELP bisman_http_requests_total HTTP requests by route, method and status class.\n",
        );
        out.push_str("# TYPE bisman_http_requests_total counter\n");
        for (route, s) in &routes {
            for (m, method) in METHODS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    let n = s.counts[m][c].load(Ordering::Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "bisman_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{class}\"}} {n}",
                            escape(route)
                        );
                    }
                }
            }
        }
        out.push_str(
            "# HELP bisman_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE bisman_http_request_duration_seconds histogram\n");
        for (route, s) in &routes {
            let route = escape(route);
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "bisman_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            cumulative += s.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "bisman_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}"
            );
            let sum = s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "bisman_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "bisman_http_request_duration_seconds_count{{route=\"{route}\"}} {cumulative}"
            );
        }
        out.push_str("# HELP bisman_http_requests_in_flight Requests being served.\n");
        out.push_str("# TYPE bisman_http_requests_in_flight gauge\n");
        let _ = writeln!(out, "bisman_http_requests_in_flight {}", self.in_flight());
    }
}

/// Escapes a label value.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the per-request middleware needs.
pub struct Observe {
    /// Where requests are counted.
    pub metrics: Arc<HttpMetrics>,
    /// Longest a request may take (then 503 `timeout`).
    pub timeout: Duration,
}

/// Keeps the in-flight gauge right even when a request is dropped (the
/// client went away).
struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Middleware, one per request (a single layer, to keep the per-request
/// cost low): bounds the request by the timeout, gives bare error responses
/// the JSON error body, and records count and latency under the matched
/// route.
pub async fn observe(State(ctx): State<Arc<Observe>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    ctx.metrics.in_flight.fetch_add(1, Ordering::Relaxed);
    let _guard = InFlight(&ctx.metrics.in_flight);
    let response = match tokio::time::timeout(ctx.timeout, next.run(request)).await {
        Ok(response) => ensure_json(response),
        Err(_) => {
            tracing::warn!(timeout = ?ctx.timeout, "request timed out");
            ApiError::Timeout.into_response()
        }
    };
    ctx.metrics.record(
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = HttpMetrics::new();
        m.record("/a", &Method::GET, 200, Duration::from_micros(300));
        m.record("/a", &Method::GET, 404, Duration::from_millis(3));
        m.record("/a", &Method::OPTIONS, 200, Duration::from_secs(20));
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains(r#"bisman_http_requests_total{route="/a",method="GET",status="2xx"} 1"#)
        );
        assert!(
            out.contains(r#"bisman_http_requests_total{route="/a",method="GET",status="4xx"} 1"#)
        );
        assert!(
            out.contains(r#"bisman_http_requests_total{route="/a",method="OTHER",status="2xx"} 1"#)
        );
        assert!(out
            .contains(r#"bisman_http_request_duration_seconds_bucket{route="/a",le="0.0005"} 1"#));
        assert!(
            out.contains(r#"bisman_http_request_duration_seconds_bucket{route="/a",le="0.005"} 2"#)
        );
        assert!(
            out.contains(r#"bisman_http_request_duration_seconds_bucket{route="/a",le="+Inf"} 3"#)
        );
        assert!(out.contains(r#"bisman_http_request_duration_seconds_count{route="/a"} 3"#));
    }
}
