//! Tenant isolation, generated from the OpenAPI document: every operation
//! with an id in its path is called with the ids of another tenant's
//! objects (each path parameter in turn, then all at once), by callers who
//! could act on their own tenant's equivalents. Every answer must be 404
//! (or 403 for a caller lacking the permission, which tells nothing), at
//! least one caller must get the 404, and no answer may carry the other
//! tenant's data.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::App;

/// Ids of the demo tenant's objects and of acme's, by path parameter.
struct Ids {
    own: Vec<(&'static str, String)>,
    foreign: Vec<(&'static str, String)>,
}

async fn ids(app: &App) -> Ids {
    let (thread, message) = app.demo_thread().await;
    let eve = app.login("acme", "eve@acme.test").await;
    let eve_session = app.get("/api/v1/auth/sessions", &eve).await.body[0]["id"].to_string();
    let acme_approval: i32 = app
        .scalar(
            "WITH e AS (INSERT INTO expenses (tenant_id, submitted_by, amount, description)
                        SELECT tenant_id, id, 10, 'acme expense' FROM users WHERE email = 'eve@acme.test'
                        RETURNING id, tenant_id, submitted_by)
             INSERT INTO approvals (tenant_id, expense_id, approver_id)
             SELECT tenant_id, id, submitted_by FROM e RETURNING id",
        )
        .await;
    let scalar_text = |sql: &'static str| async move { app.scalar::<i32>(sql).await.to_string() };
    let own = vec![
        ("thread_id", thread),
        ("message_id", message),
        ("role_id", app.role_id("Staff").await.to_string()),
        ("user_id", app.user_id("staff@demo.test").await.to_string()),
        (
            "super_admin_id",
            scalar_text("SELECT s.id FROM super_admins s JOIN users u ON u.id = s.user_id WHERE u.email = 'owner@demo.test'").await,
        ),
        (
            "approval_id",
            scalar_text("SELECT a.id FROM approvals a JOIN users u ON u.id = a.approver_id WHERE u.email = 'manager@demo.test' LIMIT 1").await,
        ),
        ("id", "0".into()),
        ("module", "expenses".into()),
        ("emoji", "%F0%9F%91%8D".into()),
    ];
    let foreign = vec![
        ("thread_id", "thr_acme".to_string()),
        ("message_id", "msg_acme".to_string()),
        (
            "role_id",
            scalar_text("SELECT r.id FROM roles r JOIN tenants t ON t.id = r.tenant_id WHERE t.slug = 'acme' LIMIT 1").await,
        ),
        ("user_id", app.user_id("eve@acme.test").await.to_string()),
        (
            "super_admin_id",
            scalar_text("SELECT s.id FROM super_admins s JOIN users u ON u.id = s.user_id WHERE u.email = 'eve@acme.test'").await,
        ),
        ("approval_id", acme_approval.to_string()),
        ("id", eve_session),
    ];
    Ids { own, foreign }
}

/// A valid body for the operations that take one.
fn body_for(method: &Method, path: &str) -> Value {
    match (method.as_str(), path.rsplit('/').next().unwrap_or("")) {
        ("PUT", "permissions") => json!({"permissions": []}),
        ("POST", "messages") => json!({"content": "hello"}),
        ("POST", "reactions") => json!({"emoji": "👍"}),
        ("POST", "approve") | ("POST", "reject") => json!({"comment": "ok"}),
        _ => json!({}),
    }
}

/// The parameters of `template` (`{name}` segments).
fn params(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// `template` with each parameter taken from `foreign` when listed in
/// `which`, from `own` otherwise.
fn fill(template: &str, ids: &Ids, which: &[&str]) -> Option<String> {
    let mut out = String::new();
    for seg in template.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(p) => {
                let pool = if which.contains(&p) {
                    &ids.foreign
                } else {
                    &ids.own
                };
                out.push_str(&pool.iter().find(|(k, _)| *k == p)?.1);
            }
            None => out.push_str(seg),
        }
    }
    Some(out)
}

#[tokio::test]
async fn another_tenants_ids_are_404_on_every_route() {
    let app = App::start().await;
    let ids = ids(&app).await;
    let callers = [
        ("owner", app.demo("owner").await),
        ("operator", app.demo("operator").await),
        ("manager", app.demo("manager").await),
    ];
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await
        .body;
    let mut cases = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        let names = params(template);
        let foreign_names: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| ids.foreign.iter().any(|(k, _)| k == n))
            .collect();
        if foreign_names.is_empty() {
            continue;
        }
        // Each foreign-able parameter alone, then all of them.
        let mut variants: Vec<Vec<&str>> = foreign_names.iter().map(|n| vec![*n]).collect();
        if foreign_names.len() > 1 {
            variants.push(foreign_names.clone());
        }
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let body = op.get("requestBody").map(|_| body_for(&method, template));
            for which in &variants {
                let path = format!("/api/v1{}", fill(template, &ids, which).unwrap());
                let mut found = false;
                for (who, token) in &callers {
                    let r = app
                        .call(method.clone(), &path, Some(token), body.clone())
                        .await;
                    assert!(
                        matches!(r.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN),
                        "{method} {path} as {who}: {} {}",
                        r.status,
                        r.text
                    );
                    assert!(
                        !r.text.to_lowercase().contains("acme"),
                        "{method} {path} as {who} leaks: {}",
                        r.text
                    );
                    found |= r.status == StatusCode::NOT_FOUND;
                    cases += 1;
                }
                assert!(
                    found,
                    "{method} {path}: every caller got 403, nothing was tested"
                );
            }
        }
    }
    assert!(cases >= 60, "{cases} cases");
    eprintln!("tenant isolation: {cases} generated cases, all 404 or 403");
}
