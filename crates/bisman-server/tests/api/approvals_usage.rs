//! `/api/v1/approvals` and `/api/v1/usage-events`.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::App;

#[tokio::test]
async fn approvals() {
    let app = App::start().await;
    let (manager, staff) = (app.demo("manager").await, app.demo("staff").await);
    let pending = app.get("/api/v1/approvals/pending", &manager).await;
    assert_eq!(pending.status, StatusCode::OK);
    let ids: Vec<i64> = pending
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(
        app.get("/api/v1/approvals/pending", &staff).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/api/v1/approvals/pending?limit=0", &manager)
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let ok = app
        .post(
            &format!("/api/v1/approvals/{}/approve", ids[0]),
            &manager,
            json!({}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["expense_status"], "APPROVED");
    let twice = app
        .post(
            &format!("/api/v1/approvals/{}/approve", ids[0]),
            &manager,
            json!({}),
        )
        .await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    let no = app
        .post(
            &format!("/api/v1/approvals/{}/reject", ids[1]),
            &manager,
            json!({"comment": "no receipt"}),
        )
        .await;
    assert_eq!(no.body["expense_status"], "REJECTED");
    let staff_try = app
        .post(
            &format!("/api/v1/approvals/{}/approve", ids[2]),
            &staff,
            json!({}),
        )
        .await;
    assert_eq!(staff_try.status, StatusCode::FORBIDDEN);
    let owner = app.demo("owner").await;
    let not_mine = app
        .post(
            &format!("/api/v1/approvals/{}/approve", ids[2]),
            &owner,
            json!({}),
        )
        .await;
    assert_eq!(
        not_mine.status,
        StatusCode::NOT_FOUND,
        "only the approver's own"
    );
    let long = app
        .post(
            &format!("/api/v1/approvals/{}/reject", ids[2]),
            &manager,
            json!({"comment": "x".repeat(2001)}),
        )
        .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get("/api/v1/approvals/pending", &manager)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let audited: i64 = app
        .scalar("SELECT count(*) FROM audit_logs WHERE entity_type = 'approval'")
        .await;
    assert_eq!(audited, 2);
}

#[tokio::test]
async fn usage_events() {
    let app = App::start().await;
    let (staff, admin) = (app.demo("staff").await, app.demo("admin").await);
    let batch = json!({"events": [
        {"event_type": "export", "module": "reports", "page": "usage"},
        {"event_type": "export", "metadata": {"rows": 10}},
        {"event_type": "search", "occurred_at": "2020-01-01T00:00:00Z"}]});
    let r = app.post("/api/v1/usage-events", &staff, batch).await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "2020 is too old: {}",
        r.text
    );
    let batch = json!({"events": [
        {"event_type": "export", "module": "reports", "page": "usage"},
        {"event_type": "export", "metadata": {"rows": 10}}]});
    let r = app.post("/api/v1/usage-events", &staff, batch).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(r.body["accepted"], 2);
    let many: Vec<_> = (0..1001).map(|_| json!({"event_type": "x"})).collect();
    for bad in [
        json!({"events": []}),
        json!({"events": many}),
        json!({"events": [{"event_type": "x", "module": "Bad Key"}]}),
        json!({"events": [{"event_type": "x", "metadata": [1]}]}),
        json!({"events": [{"event_type": "x", "occurred_at": "2999-01-01T00:00:00Z"}]}),
    ] {
        assert_eq!(
            app.post("/api/v1/usage-events", &staff, bad).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(
        app.get("/api/v1/usage-events/summary", &staff).await.status,
        StatusCode::FORBIDDEN
    );
    let s = app
        .get("/api/v1/usage-events/summary?event_type=export", &admin)
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text);
    let rows = s.body.as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["events"].as_i64().unwrap())
            .sum::<i64>(),
        2
    );
    let all = app.get("/api/v1/usage-events/summary", &admin).await;
    assert!(all
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["event_type"] == "page_view"));
    for (q, status) in [
        ("from=2025-02-01&to=2025-01-01", 422),
        ("from=2020-01-01&to=2025-01-01", 422),
        ("from=yesterday", 400),
    ] {
        assert_eq!(
            app.get(&format!("/api/v1/usage-events/summary?{q}"), &admin)
                .await
                .status
                .as_u16(),
            status,
            "{q}"
        );
    }
    // Tenant isolation: acme sees none of demo's events.
    let eve = app.login("acme", "eve@acme.test").await;
    assert_eq!(
        app.get("/api/v1/usage-events/summary", &eve).await.body,
        json!([])
    );
}
