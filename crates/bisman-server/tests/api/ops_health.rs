//! `/api/v1/ops`, `/healthz`, `/readyz`, `/metrics`, the OpenAPI document,
//! and the error bodies of unknown routes and methods.

use axum::http::{Method, StatusCode};

use crate::common::App;

#[tokio::test]
async fn ops_is_for_super_admins() {
    let app = App::start().await;
    let (owner, admin) = (app.demo("owner").await, app.demo("admin").await);
    for path in [
        "/api/v1/ops/partitions",
        "/api/v1/ops/slow-queries",
        "/api/v1/ops/table-access",
        "/api/v1/ops/cache",
        "/api/v1/ops/jobs",
    ] {
        let r = app.get(path, &owner).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        let denied = app.get(path, &admin).await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN, "{path}");
    }
    let parts = app.get("/api/v1/ops/partitions", &owner).await;
    assert!(parts.body["tables"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["table"]["base_table"] == "thread_messages"));
    let access = app.get("/api/v1/ops/table-access", &owner).await;
    assert!(access
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["table_name"] == "thread_messages"));
    let cache = app.get("/api/v1/ops/cache", &owner).await;
    assert_eq!(cache.body["health"]["mode"], "memory");
    assert!(cache.body["stats"].as_array().unwrap().len() >= 15);
}

#[tokio::test]
async fn health_metrics_openapi_and_unknown_routes() {
    let app = App::start().await;
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.body["postgres"], "ok");

    let staff = app.demo("staff").await;
    let (thread, _) = app.demo_thread().await;
    app.get(&format!("/api/v1/threads/{thread}/messages"), &staff)
        .await;
    app.get("/api/v1/permissions/check?module=a&page=b", &staff)
        .await;
    let m = app.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(m.status, StatusCode::OK);
    for needle in [
        r#"bisman_http_requests_total{route="/api/v1/threads/{thread_id}/messages",method="GET",status="2xx"} 1"#,
        r#"bisman_http_requests_total{route="/api/v1/auth/login",method="POST",status="2xx"} 1"#,
        r#"bisman_http_request_duration_seconds_count{route="/api/v1/permissions/check"} 1"#,
        r#"bisman_cache_events_total{namespace="user_permissions",layer="source",event="miss"}"#,
        r#"bisman_db_pool_connections{state="idle"}"#,
        "bisman_db_pool_max_connections",
    ] {
        assert!(m.text.contains(needle), "missing {needle} in\n{}", m.text);
    }
    assert!(!m.text.contains(&thread), "ids never become labels");

    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "{}", paths.len());
    assert!(paths
        .keys()
        .all(|p| p.starts_with("/api/v1/")
            || ["/healthz", "/readyz", "/metrics"].contains(&p.as_str())));

    let unknown = app.call(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "not_found");
    let wrong = app
        .call(Method::PATCH, "/api/v1/auth/login", None, None)
        .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.code(), "method_not_allowed");
    assert!(unknown.headers.contains_key("x-request-id"));
}
