//! `/api/v1/auth`.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::{App, PASSWORD};

#[tokio::test]
async fn login_refresh_logout() {
    let app = App::start().await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"tenant": "demo", "email": "STAFF@demo.test", "password": PASSWORD})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["user"]["user_type"], "STAFF");
    let token = r.body["token"].as_str().unwrap().to_string();
    let refresh = r.body["refresh_token"].as_str().unwrap().to_string();
    // Only the hash is stored.
    let stored: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM user_sessions WHERE token_hash = '{token}'"
        ))
        .await;
    assert_eq!(stored, 0);

    let sessions = app.get("/api/v1/auth/sessions", &token).await;
    assert_eq!(sessions.status, StatusCode::OK);
    assert_eq!(sessions.body.as_array().unwrap().len(), 1);
    assert_eq!(sessions.body[0]["current"], true);

    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token2 = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/api/v1/me/permissions", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/me/permissions", &token2).await.status,
        StatusCode::OK
    );
    // The old refresh token is spent.
    let again = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.code(), "unauthenticated");
    let bad = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "nope"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);

    let out = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&token2), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = app.get("/api/v1/me/permissions", &token2).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "unauthenticated");
    let twice = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&token2), None)
        .await;
    assert_eq!(twice.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn failed_logins_are_generic_and_rate_limited() {
    let app = App::start().await;
    let attempt = |tenant: &'static str, email: &'static str, password: &'static str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"tenant": tenant, "email": email, "password": password})),
        )
    };
    for (t, e, p) in [
        ("demo", "staff@demo.test", "wrong"),
        ("demo", "nobody@demo.test", PASSWORD),
        ("nope", "staff@demo.test", PASSWORD),
        ("acme", "staff@demo.test", PASSWORD),
    ] {
        let r = attempt(t, e, p).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{t} {e}");
        assert_eq!(r.code(), "invalid_credentials");
    }
    // Four more failures reach the per-account limit (5).
    for _ in 0..4 {
        assert_eq!(
            attempt("demo", "staff@demo.test", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let limited = attempt("demo", "staff@demo.test", PASSWORD).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.code(), "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    // Other accounts are not locked by it.
    assert_eq!(
        attempt("demo", "manager@demo.test", PASSWORD).await.status,
        StatusCode::OK
    );
    // Validation.
    let missing = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"tenant": "demo"})),
        )
        .await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let empty = attempt("demo", "staff@demo.test", "").await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(empty.code(), "validation_failed");
}

#[tokio::test]
async fn sessions_and_password_change() {
    let app = App::start().await;
    let a = app.demo("staff").await;
    let b = app.demo("staff").await;
    let list = app.get("/api/v1/auth/sessions", &a).await;
    assert_eq!(list.body.as_array().unwrap().len(), 2);
    let other = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let del = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{other}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/me/permissions", &b).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{other}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let bad = app
        .call(Method::DELETE, "/api/v1/auth/sessions/abc", Some(&a), None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Another user's session is not mine to end.
    let m = app.demo("manager").await;
    let mine = app.get("/api/v1/auth/sessions", &m).await.body[0]["id"]
        .as_i64()
        .unwrap();
    let foreign = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{mine}"),
            Some(&a),
            None,
        )
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);

    let c = app.demo("staff").await;
    let wrong = app
        .post(
            "/api/v1/auth/password",
            &a,
            json!({"current_password": "nope", "new_password": "another-password"}),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let short = app
        .post(
            "/api/v1/auth/password",
            &a,
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(short.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = app
        .post(
            "/api/v1/auth/password",
            &a,
            json!({"current_password": PASSWORD, "new_password": "another-password"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.text);
    assert_eq!(
        app.get("/api/v1/me/permissions", &c).await.status,
        StatusCode::UNAUTHORIZED,
        "other sessions end"
    );
    assert_eq!(
        app.get("/api/v1/me/permissions", &a).await.status,
        StatusCode::OK,
        "this one stays"
    );
    let relog = app.call(Method::POST, "/api/v1/auth/login", None,
                         Some(json!({"tenant": "demo", "email": "staff@demo.test", "password": "another-password"}))).await;
    assert_eq!(relog.status, StatusCode::OK);
    let audited: i64 = app
        .scalar("SELECT count(*) FROM audit_logs WHERE action = 'user.password.change'")
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn missing_or_malformed_tokens_are_401() {
    let app = App::start().await;
    for auth in [
        None,
        Some("Bearer"),
        Some("Bearer abc"),
        Some(&*"Bearer ".repeat(3)),
        Some("Basic dXNlcjpwYXNz"),
        Some(&*format!("Bearer {}", "a".repeat(64))),
    ] {
        let mut req = axum::http::Request::builder().uri("/api/v1/me/permissions");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = app.send(req.body(axum::body::Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.code(), "unauthenticated");
    }
}
