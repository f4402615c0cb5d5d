//! `/api/v1/admin`: gated, audited, and invalidating at once.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::common::App;

const SUBMIT: &str = "/api/v1/permissions/check?module=expenses&page=submit&action=create";

#[tokio::test]
async fn role_permission_edit_revokes_at_once_and_is_audited() {
    let app = App::start().await;
    let (staff, admin) = (app.demo("staff").await, app.demo("admin").await);
    assert_eq!(app.get(SUBMIT, &staff).await.body["allowed"], true);
    let role = app.role_id("Staff").await;
    let path = format!("/api/v1/admin/roles/{role}/permissions");
    let keep = json!({"permissions": [
        {"module": "expenses", "page": "list", "actions": ["view"]},
        {"module": "messaging", "page": "threads", "actions": ["view", "create"]}]});

    // Permission denial: staff holds no admin pages.
    let denied = app
        .call(Method::PUT, &path, Some(&staff), Some(keep.clone()))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "forbidden");

    let r = app
        .call(Method::PUT, &path, Some(&admin), Some(keep.clone()))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["permissions"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get(SUBMIT, &staff).await.body["allowed"],
        false,
        "revoked at once"
    );
    let audit: serde_json::Value = app
        .scalar("SELECT details FROM audit_logs WHERE action = 'role.permissions.replace'")
        .await;
    assert_eq!(audit["after"], keep["permissions"]);
    assert!(audit["before"].as_array().unwrap().len() == 3);

    // Nobody grants what they do not hold (the admin lacks payments/refunds).
    let escalate =
        json!({"permissions": [{"module": "payments", "page": "refunds", "actions": ["view"]}]});
    let r = app
        .call(Method::PUT, &path, Some(&admin), Some(escalate))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Bad grants.
    for bad in [
        json!({"permissions": [{"module": "expenses", "page": "nope", "actions": ["view"]}]}),
        json!({"permissions": [{"module": "expenses", "page": "list", "actions": []}]}),
        json!({"permissions": [{"module": "expenses", "page": "list", "actions": ["fly"]}]}),
        json!({"permissions": [{"module": "expenses", "page": "list", "actions": ["view"]},
                               {"module": "expenses", "page": "list", "actions": ["view"]}]}),
        json!({"permissions": [{"module": "expenses", "page": "list", "actions": ["view"], "x": 1}]}),
    ] {
        let r = app
            .call(Method::PUT, &path, Some(&admin), Some(bad.clone()))
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad} {}",
            r.text
        );
    }
    // Another tenant's role, and an unknown one: 404.
    let acme_role: i32 = app
        .scalar("SELECT id FROM roles WHERE name = 'Acme role'")
        .await;
    for id in [acme_role, 999_999] {
        let r = app
            .call(
                Method::PUT,
                &format!("/api/v1/admin/roles/{id}/permissions"),
                Some(&admin),
                Some(keep.clone()),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn roles_and_user_roles() {
    let app = App::start().await;
    let admin = app.demo("admin").await;
    let manager = app.demo("manager").await;
    assert_eq!(
        app.get("/api/v1/admin/roles", &manager).await.status,
        StatusCode::FORBIDDEN
    );
    let roles = app.get("/api/v1/admin/roles", &admin).await;
    assert_eq!(roles.status, StatusCode::OK);
    assert_eq!(
        roles.body.as_array().unwrap().len(),
        3,
        "only the demo tenant's roles"
    );

    let created = app
        .post("/api/v1/admin/roles", &admin, json!({"name": "Auditor"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let role = created.body["id"].as_i64().unwrap();
    let dup = app
        .post("/api/v1/admin/roles", &admin, json!({"name": "Auditor"}))
        .await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    let long = app
        .post(
            "/api/v1/admin/roles",
            &admin,
            json!({"name": "x".repeat(101)}),
        )
        .await;
    assert_eq!(long.status, StatusCode::UNPROCESSABLE_ENTITY);
    let grant =
        json!({"permissions": [{"module": "reports", "page": "usage", "actions": ["view"]}]});
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/roles/{role}/permissions"),
            Some(&admin),
            Some(grant),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    let staff_id = app.user_id("staff@demo.test").await;
    let staff = app.demo("staff").await;
    let usage = "/api/v1/permissions/check?module=reports&page=usage";
    assert_eq!(app.get(usage, &staff).await.body["allowed"], false);
    let path = format!("/api/v1/admin/users/{staff_id}/roles/{role}");
    assert_eq!(
        app.call(Method::PUT, &path, Some(&manager), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call(Method::PUT, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(usage, &staff).await.body["allowed"], true);
    let users = app.get("/api/v1/admin/users", &admin).await;
    let row = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == staff_id)
        .unwrap()
        .clone();
    assert!(row["roles"].as_array().unwrap().contains(&json!(role)));
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(usage, &staff).await.body["allowed"],
        false,
        "unassigned at once"
    );
    assert_eq!(
        app.call(Method::DELETE, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Another tenant's user: 404.
    let eve = app.user_id("eve@acme.test").await;
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/admin/users/{eve}/roles/{role}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Deleting a role takes it from its holders at once.
    assert_eq!(
        app.call(Method::PUT, &path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(usage, &staff).await.body["allowed"], true);
    let del = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/roles/{role}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(usage, &staff).await.body["allowed"], false);
    let again = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/roles/{role}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let audited: i64 = app
        .scalar("SELECT count(*) FROM audit_logs WHERE action IN ('role.create', 'user.role.assign', 'user.role.unassign', 'role.delete')")
        .await;
    assert_eq!(audited, 5);
}

#[tokio::test]
async fn super_admin_modules_and_deactivation() {
    let app = App::start().await;
    let (op, admin, staff, owner) = (
        app.demo("operator").await,
        app.demo("admin").await,
        app.demo("staff").await,
        app.demo("owner").await,
    );
    let sa: i32 = app
        .scalar("SELECT s.id FROM super_admins s JOIN users u ON u.id = s.user_id WHERE u.email = 'owner@demo.test'")
        .await;
    assert_eq!(
        app.get("/api/v1/admin/super-admins", &admin).await.status,
        StatusCode::FORBIDDEN
    );
    let list = app.get("/api/v1/admin/super-admins", &op).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body.as_array().unwrap().len(), 1);

    let module = format!("/api/v1/admin/super-admins/{sa}/modules/expenses");
    assert_eq!(
        app.call(Method::DELETE, &module, Some(&admin), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.call(Method::DELETE, &module, Some(&owner), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get(SUBMIT, &staff).await.body["allowed"], true);
    assert_eq!(
        app.call(Method::DELETE, &module, Some(&op), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(SUBMIT, &staff).await.body["allowed"],
        false,
        "module gone at once"
    );
    assert_eq!(
        app.call(Method::DELETE, &module, Some(&op), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.call(Method::PUT, &module, Some(&op), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(SUBMIT, &staff).await.body["allowed"], true);
    let unknown = format!("/api/v1/admin/super-admins/{sa}/modules/nope");
    assert_eq!(
        app.call(Method::PUT, &unknown, Some(&op), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let acme_sa: i32 = app
        .scalar("SELECT s.id FROM super_admins s JOIN users u ON u.id = s.user_id WHERE u.email = 'eve@acme.test'")
        .await;
    let foreign = format!("/api/v1/admin/super-admins/{acme_sa}/modules/expenses");
    assert_eq!(
        app.call(Method::DELETE, &foreign, Some(&op), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // An operator bounded by the super admin may not widen it.
    sqlx::query("INSERT INTO platform_operators (user_id, tenant_id) SELECT id, tenant_id FROM users WHERE email = 'admin@demo.test'")
        .execute(app.pool())
        .await
        .unwrap();
    assert_eq!(
        app.call(Method::PUT, &module, Some(&admin), None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let deact = format!("/api/v1/admin/super-admins/{sa}/deactivate");
    let r = app.call(Method::POST, &deact, Some(&op), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["changed"], true);
    assert!(r.body["sessions_ended"].as_u64().unwrap() >= 1);
    assert_eq!(
        app.get("/api/v1/me/permissions", &owner).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(SUBMIT, &staff).await.body["allowed"],
        false,
        "users lose every module"
    );
    let again = app.call(Method::POST, &deact, Some(&op), None).await;
    assert_eq!(again.body["changed"], false);
    let audited: i64 = app
        .scalar("SELECT count(*) FROM audit_logs WHERE entity_type = 'super_admin'")
        .await;
    assert_eq!(audited, 3);
}
