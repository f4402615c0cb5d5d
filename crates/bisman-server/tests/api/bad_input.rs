//! Bad input: each case gets a 4xx with a clear error body and the service
//! stays up; then a property test over every operation of the OpenAPI
//! document with random paths, queries and bodies: no 5xx, ever.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::common::{config, App};

fn raw(
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    if let Some(ct) = content_type {
        r = r.header(header::CONTENT_TYPE, ct);
    }
    r.body(Body::from(body)).unwrap()
}

#[tokio::test]
async fn each_bad_input_gets_a_clear_4xx() {
    let mut cfg = config();
    cfg.body_limit = 64 * 1024;
    let app = App::start_with(cfg).await;
    let staff = app.demo("staff").await;
    let (thread, _) = app.demo_thread().await;
    let post = format!("/api/v1/threads/{thread}/messages");
    let json_ct = Some("application/json");
    let cases: Vec<(&str, Request<Body>, u16, &str)> = vec![
        ("malformed JSON", raw(Method::POST, &post, &staff, json_ct, b"{\"content\": ".to_vec()), 400, "malformed_json"),
        ("not an object", raw(Method::POST, &post, &staff, json_ct, b"[1,2]".to_vec()), 422, "validation_failed"),
        ("wrong type", raw(Method::POST, &post, &staff, json_ct, br#"{"content": 5}"#.to_vec()), 422, "validation_failed"),
        ("unknown field", raw(Method::POST, &post, &staff, json_ct, br#"{"content": "a", "admin": true}"#.to_vec()), 422, "validation_failed"),
        ("invalid UTF-8", raw(Method::POST, &post, &staff, json_ct, b"{\"content\": \"\xff\xfe\"}".to_vec()), 400, "malformed_json"),
        ("no content type", raw(Method::POST, &post, &staff, None, br#"{"content": "a"}"#.to_vec()), 415, "unsupported_media_type"),
        ("huge body", raw(Method::POST, &post, &staff, json_ct,
            json!({"content": "x".repeat(200_000)}).to_string().into_bytes()), 413, "payload_too_large"),
        ("overlong string", raw(Method::POST, &post, &staff, json_ct,
            json!({"content": "x".repeat(10_001)}).to_string().into_bytes()), 422, "validation_failed"),
        ("NUL in text", raw(Method::POST, &post, &staff, json_ct, br#"{"content": "a\u0000b"}"#.to_vec()), 422, "validation_failed"),
        ("negative page", raw(Method::GET, &format!("{post}?limit=-5"), &staff, None, vec![]), 422, "validation_failed"),
        ("enormous page", raw(Method::GET, &format!("{post}?limit=99999999999999999999999"), &staff, None, vec![]), 400, "invalid_query"),
        ("overlong id", raw(Method::GET, &format!("/api/v1/threads/{}/messages", "t".repeat(5000)), &staff, None, vec![]), 404, "not_found"),
        ("number overflow", raw(Method::DELETE, "/api/v1/auth/sessions/99999999999999999999", &staff, None, vec![]), 400, "invalid_path"),
        ("huge batch", raw(Method::POST, "/api/v1/usage-events", &staff, json_ct,
            json!({"events": (0..2000).map(|_| json!({"event_type": "x"})).collect::<Vec<_>>()}).to_string().into_bytes()), 422, "validation_failed"),
    ];
    for (what, req, status, code) in cases {
        let r = app.send(req).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.text);
        assert_eq!(r.code(), code, "{what}: {}", r.text);
        assert!(
            !r.body["error"]["message"].as_str().unwrap().is_empty(),
            "{what}"
        );
    }
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK, "still up");
}

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            if let Ok(m) = method.to_uppercase().parse::<Method>() {
                out.push(Operation {
                    method: m,
                    path: path.clone(),
                });
            }
        }
    }
    out
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[a-z_]{1,12}".prop_map(Value::from),
        Just(Value::from("x".repeat(3000))),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("content".to_string()),
                    Just("title".to_string()),
                    Just("emoji".to_string()),
                    Just("events".to_string()),
                    Just("event_type".to_string()),
                    Just("permissions".to_string()),
                    Just("module".to_string()),
                    Just("page".to_string()),
                    Just("actions".to_string()),
                    Just("name".to_string()),
                    Just("tenant".to_string()),
                    Just("email".to_string()),
                    Just("password".to_string()),
                    Just("participant_ids".to_string()),
                    Just("up_to_message_id".to_string()),
                    Just("comment".to_string()),
                    "[a-z_]{1,10}",
                ],
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("99999999999".to_string()),
        Just("thr_acme".to_string()),
        Just("msg_acme".to_string()),
        Just("%F0%9F%8E%89".to_string()),
        Just("%FF%FE".to_string()),
        Just("expenses".to_string()),
        // Injection and traversal attempts (percent-encoded, as a client sends them).
        Just("%27%3B%20DROP%20TABLE%20users%3B--".to_string()),
        Just("1%20OR%201%3D1".to_string()),
        Just("..%2F..%2Fetc%2Fpasswd".to_string()),
        Just("%00".to_string()),
        Just("%22%29%3B%20SELECT%20pg_sleep(10)%3B--".to_string()),
        Just("%E2%80%AE%F0%9F%8E%89".to_string()),
        "[a-zA-Z0-9_]{1,20}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("limit"),
                Just("before"),
                Just("module"),
                Just("page"),
                Just("action"),
                Just("from"),
                Just("to"),
                Just("event_type"),
                Just("zzz")
            ],
            prop_oneof![
                Just("-1".to_string()),
                Just("0".to_string()),
                Just("50".to_string()),
                Just("1e99".to_string()),
                Just("2025-01-01".to_string()),
                Just("%FF".to_string()),
                "[a-z0-9]{0,12}"
            ],
        ),
        0..4,
    )
    .prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

#[test]
fn no_operation_answers_5xx_to_random_input() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, tokens, ops) = rt.block_on(async {
        let app = App::start().await;
        let tokens = vec![
            app.demo("owner").await,
            app.demo("staff").await,
            app.demo("operator").await,
            "0".repeat(64),
        ];
        let doc = app
            .call(Method::GET, "/api/v1/openapi.json", None, None)
            .await
            .body;
        let ops = operations(&doc);
        (app, tokens, ops)
    });
    let users_before: i64 = rt.block_on(app.scalar("SELECT count(*) FROM users"));
    assert!(ops.len() >= 30, "{}", ops.len());
    let cases = std::env::var("BISMAN_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        0..ops.len(),
        0..tokens.len(),
        prop::collection::vec(segment(), 3),
        query(),
        prop_oneof![
            json_value().prop_map(|v| v.to_string().into_bytes()),
            prop::collection::vec(any::<u8>(), 0..64)
        ],
        any::<bool>(),
    );
    runner
        .run(&strategy, |(op, token, segments, query, body, with_ct)| {
            let op = &ops[op];
            let mut segs = segments.iter();
            let mut path = String::new();
            for part in op.path.split('/').filter(|p| !p.is_empty()) {
                path.push('/');
                if part.starts_with('{') {
                    path.push_str(segs.next().map_or("x", String::as_str));
                } else {
                    path.push_str(part);
                }
            }
            if !query.is_empty() {
                path.push('?');
                path.push_str(&query);
            }
            let req = raw(
                op.method.clone(),
                &path,
                &tokens[token],
                with_ct.then_some("application/json"),
                body,
            );
            let r = rt.block_on(app.send(req));
            prop_assert!(
                r.status.as_u16() < 500,
                "{} {path} -> {}: {}",
                op.method,
                r.status,
                r.text
            );
            if r.status.as_u16() >= 400 {
                prop_assert!(
                    r.body["error"]["code"].is_string(),
                    "{} {path}: no error body: {}",
                    op.method,
                    r.text
                );
            }
            Ok(())
        })
        .unwrap();
    let health = rt.block_on(app.call(Method::GET, "/readyz", None, None));
    assert_eq!(health.status, StatusCode::OK);
    let users_after: i64 = rt.block_on(app.scalar("SELECT count(*) FROM users"));
    assert_eq!(users_before, users_after, "no input reached SQL as code");
    eprintln!(
        "{cases} random requests over {} operations: no 5xx",
        ops.len()
    );
}
