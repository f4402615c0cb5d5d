//! `/api/v1/me/permissions` and `/api/v1/permissions/check`.

use axum::http::StatusCode;

use crate::common::App;

#[tokio::test]
async fn effective_permissions_and_checks() {
    let app = App::start().await;
    let staff = app.demo("staff").await;
    let me = app.get("/api/v1/me/permissions", &staff).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user_type"], "STAFF");
    assert_eq!(
        me.body["modules"]["expenses"]["submit"],
        serde_json::json!(["view", "create"])
    );
    assert!(me.body["modules"].get("admin").is_none());

    let check = |q: &'static str| app.get(format!("/api/v1/permissions/check?{q}"), &staff);
    let yes = check("module=expenses&page=submit&action=create").await;
    assert_eq!(
        (yes.status, &yes.body["allowed"]),
        (StatusCode::OK, &serde_json::json!(true))
    );
    let default_view = check("module=expenses&page=list").await;
    assert_eq!(default_view.body["action"], "view");
    assert_eq!(default_view.body["allowed"], true);
    let no = check("module=payments&page=list").await;
    assert_eq!(no.body["allowed"], false);
    assert_eq!(
        check("module=expenses&page=submit&action=fly").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        check("module=Expenses&page=submit").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(check("page=submit").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        check("module=a&page=b&extra=1").await.status,
        StatusCode::BAD_REQUEST
    );

    // The super admin holds every page of its modules; the operator none.
    let owner = app.demo("owner").await;
    let all = app
        .get(
            "/api/v1/permissions/check?module=payments&page=refunds&action=delete",
            &owner,
        )
        .await;
    assert_eq!(all.body["allowed"], true);
    let op = app.demo("operator").await;
    let none = app.get("/api/v1/me/permissions", &op).await;
    assert_eq!(none.body["modules"], serde_json::json!({}));
}
