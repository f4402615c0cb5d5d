//! The ops web page (`/ops`) in process: logged out → the login form,
//! non-operators → 403, the super admin sees real figures, and "premake
//! now" refuses forged posts. The browser test is
//! `crates/bisman/tests/ops_page_browser.rs`.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};

use crate::common::{App, Reply, PASSWORD};

const HOST: &str = "ops.test:8080";
const ORIGIN: &str = "http://ops.test:8080";
const PAGES: [&str; 5] = [
    "/ops",
    "/ops/partitions",
    "/ops/slow-queries",
    "/ops/table-access",
    "/ops/cache",
];

/// A browser-like request: `Host`, optional cookie, optional form body
/// with an `Origin`.
async fn browse(
    app: &App,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<(&str, &str)>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, HOST);
    if let Some(c) = cookie {
        req = req.header(
            header::COOKIE,
            format!("theme=dark; bisman_ops_session={c}"),
        );
    }
    let req = match form {
        Some((origin, body)) => {
            if !origin.is_empty() {
                req = req.header(header::ORIGIN, origin);
            }
            req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body.to_string()))
        }
        None => req.body(Body::empty()),
    }
    .unwrap();
    app.send(req).await
}

async fn get(app: &App, path: &str, cookie: Option<&str>) -> Reply {
    browse(app, Method::GET, path, cookie, None).await
}

async fn login_form(app: &App, email: &str, password: &str) -> Reply {
    let body = format!(
        "tenant=demo&email={}&password={password}&next=%2Fops%2Fpartitions",
        email.replace('@', "%40")
    );
    browse(app, Method::POST, "/ops/login", None, Some((ORIGIN, &body))).await
}

/// Logs the demo super admin in through the form; the cookie's token.
async fn owner_cookie(app: &App) -> String {
    let r = login_form(app, "owner@demo.test", PASSWORD).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers[header::LOCATION], "/ops/partitions");
    let set = r.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ops"] {
        assert!(set.contains(attr), "{set}");
    }
    let token = set
        .strip_prefix("bisman_ops_session=")
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_string();
    assert_eq!(token.len(), 64);
    token
}

/// The text of `data-field="{field}"` in the row of `table`.
fn field(html: &str, table: &str, field: &str) -> String {
    let row = &html[html
        .find(&format!("data-table=\"{table}\""))
        .unwrap_or_else(|| panic!("no row for {table}"))..];
    let cell = &row[row.find(&format!("data-field=\"{field}\">")).unwrap()..];
    let cell = &cell[cell.find('>').unwrap() + 1..];
    let cell = &cell[..cell.find("</td>").unwrap()];
    let mut text = String::new();
    let mut in_tag = false;
    for c in cell.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.trim().to_string()
}

fn csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..at + 64].to_string()
}

async fn months(app: &App, table: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bisman_partitions($1) WHERE NOT is_default")
        .bind(table)
        .fetch_one(app.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn logged_out_visitors_get_the_login_form() {
    let app = App::start().await;
    let r = get(&app, "/ops", None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/ops/login");
    let r = get(&app, "/ops/partitions", None).await;
    assert_eq!(
        r.headers[header::LOCATION],
        "/ops/login?next=/ops/partitions"
    );
    // A token that is not a live session is the same as none.
    let r = get(&app, "/ops/cache", Some(&"ab".repeat(32))).await;
    assert_eq!(r.headers[header::LOCATION], "/ops/login?next=/ops/cache");
    let r = browse(
        &app,
        Method::POST,
        "/ops/partitions/premake",
        None,
        Some((ORIGIN, "csrf=x")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    let form = get(&app, "/ops/login?next=/ops/cache", None).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form
        .text
        .contains("<form method=\"post\" action=\"/ops/login\">"));
    assert!(form.text.contains("name=\"next\" value=\"/ops/cache\""));
    assert_eq!(
        form.headers[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    assert_eq!(form.headers["x-frame-options"], "DENY");
    assert!(form.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    // `next` can only name a page: no open redirect.
    let evil = get(&app, "/ops/login?next=https://evil.test/", None).await;
    assert!(evil.text.contains("name=\"next\" value=\"/ops\""));

    let wrong = login_form(&app, "owner@demo.test", "not-the-password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    assert!(wrong.text.contains("Invalid tenant, e-mail or password."));

    let css = get(&app, "/ops/assets/ops.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    let js = get(&app, "/ops/assets/ops.js", None).await;
    assert!(js.text.contains("DOMContentLoaded"));
}

#[tokio::test]
async fn only_super_admins_holding_admin_ops_get_in() {
    let app = App::start().await;
    // The staff member and the admin (an ADMIN whose role holds admin/ops)
    // know their passwords, and still get no session here.
    for who in ["staff@demo.test", "admin@demo.test"] {
        let r = login_form(&app, who, PASSWORD).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {}", r.text);
        assert!(r.headers.get(header::SET_COOKIE).is_none(), "{who}");
        assert!(r.text.contains("Not for this account"), "{who}");
    }
    // A session token made through the API, put in the cookie by hand,
    // meets the same check on every page and action.
    for who in ["staff", "admin"] {
        let token = app.demo(who).await;
        for path in PAGES {
            let r = get(&app, path, Some(&token)).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{who} {path}");
            assert_eq!(r.headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        }
        let r = browse(
            &app,
            Method::POST,
            "/ops/partitions/premake",
            Some(&token),
            Some((ORIGIN, "csrf=x")),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}");
    }
    // A super admin of another tenant without admin/ops assigned is refused too.
    sqlx::query(
        "DELETE FROM super_admin_modules WHERE module_id = (SELECT id FROM modules WHERE key = 'admin')
           AND super_admin_id = (SELECT super_admin_id FROM users WHERE email = 'eve@acme.test')",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let eve = app.login("acme", "eve@acme.test").await;
    let r = get(&app, "/ops", Some(&eve)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
}

#[tokio::test]
async fn the_super_admin_sees_real_figures_on_every_page() {
    let app = App::start().await;
    let cookie = owner_cookie(&app).await;
    for path in PAGES {
        let r = get(&app, path, Some(&cookie)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        assert!(r.text.contains("owner@demo.test"), "{path}");
        assert!(
            !r.text.contains(&cookie),
            "{path}: the token never reaches a page"
        );
        assert_eq!(r.headers[header::CACHE_CONTROL], "no-store");
    }

    let parts = get(&app, "/ops/partitions", Some(&cookie)).await.text;
    for table in [
        "thread_messages",
        "client_usage_events",
        "audit_logs",
        "message_reads",
    ] {
        assert_eq!(
            field(&parts, table, "months"),
            months(&app, table).await.to_string(),
            "{table}"
        );
    }
    assert_eq!(field(&parts, "thread_messages", "premade"), "11 / 11");
    assert!(parts.contains("Every managed table has its months premade"));

    let overview = get(&app, "/ops", Some(&cookie)).await.text;
    assert!(overview.contains(&app.db.name), "the database's name");
    assert!(overview.contains("PostgreSQL 15") || overview.contains("PostgreSQL 1"));
    assert!(overview.contains("Maintenance jobs"));

    let access = get(&app, "/ops/table-access", Some(&cookie)).await.text;
    assert!(access.contains("data-table=\"thread_messages\""));

    let slow = get(&app, "/ops/slow-queries?window=1h", Some(&cookie))
        .await
        .text;
    let problem: Option<String> = app.scalar("SELECT bisman_stat_statements_problem()").await;
    match problem {
        Some(p) => {
            assert!(slow.contains("id=\"no-pg-stat-statements\""), "{slow}");
            assert!(
                slow.contains(&p.replace('\'', "&#39;")),
                "the reason is shown"
            );
        }
        None => assert!(slow.contains("By total time") && slow.contains("By mean time")),
    }
    assert!(slow.contains("<option value=\"1h\" selected>"));

    let cache = get(&app, "/ops/cache", Some(&cookie)).await.text;
    assert!(cache.contains("data-ns=\"sessions\" data-layer=\"source\""));
    assert!(cache.contains("Mode <strong>memory</strong>"));
    assert!(cache.contains("No Redis behind this cache: these are the in-process store"));
}

#[tokio::test]
async fn premake_now_refuses_forged_posts_and_works_from_the_page() {
    let app = App::start().await;
    let cookie = owner_cookie(&app).await;
    // The operator raised the months to premake: the page warns.
    sqlx::query("UPDATE bisman_partitioned_tables SET premake_months = premake_months + 1 WHERE base_table = 'thread_messages'")
        .execute(app.pool())
        .await
        .unwrap();
    let before = months(&app, "thread_messages").await;
    let page = get(&app, "/ops/partitions", Some(&cookie)).await.text;
    assert_eq!(field(&page, "thread_messages", "premade"), "11 / 12");
    assert!(page.contains("11 months premade, 12 configured"));
    let token = csrf(&page);

    let forged = [
        (ORIGIN, String::new()),                       // no CSRF token
        (ORIGIN, format!("csrf={}", "0".repeat(64))),  // a wrong one
        ("http://evil.test", format!("csrf={token}")), // another origin
        ("null", format!("csrf={token}")),             // a sandboxed frame
    ];
    for (origin, body) in &forged {
        let r = browse(
            &app,
            Method::POST,
            "/ops/partitions/premake",
            Some(&cookie),
            Some((origin, body)),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{origin} {body}");
        assert!(r.text.contains("Form refused"));
    }
    assert_eq!(months(&app, "thread_messages").await, before, "nothing ran");

    let r = browse(
        &app,
        Method::POST,
        "/ops/partitions/premake",
        Some(&cookie),
        Some((ORIGIN, &format!("csrf={token}"))),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers[header::LOCATION], "/ops/partitions?premake=ran");
    assert_eq!(months(&app, "thread_messages").await, before + 1);
    let page = get(&app, "/ops/partitions?premake=ran", Some(&cookie))
        .await
        .text;
    assert!(page.contains("Premake ran:"), "{page}");
    assert_eq!(field(&page, "thread_messages", "premade"), "12 / 12");
    assert_eq!(
        field(&page, "thread_messages", "months"),
        (before + 1).to_string()
    );
    let (runs, audits): (i64, i64) = (
        app.scalar("SELECT count(*) FROM bisman_job_runs WHERE job = 'premake' AND instance LIKE 'ops-page@%' AND outcome = 'ok'").await,
        app.scalar("SELECT count(*) FROM audit_logs WHERE action = 'ops.partitions.premake'").await,
    );
    assert_eq!((runs, audits), (1, 1));

    // Logging out needs the token too, ends the session and drops the cookie.
    let r = browse(
        &app,
        Method::POST,
        "/ops/logout",
        Some(&cookie),
        Some((ORIGIN, "")),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = browse(
        &app,
        Method::POST,
        "/ops/logout",
        Some(&cookie),
        Some((ORIGIN, &format!("csrf={token}"))),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = get(&app, "/ops", Some(&cookie)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the session is over");
}

/// The partitions page shows what the data lifecycle leaves to an operator:
/// month tables left detached, rows waiting in default partitions (late rows
/// of a dropped month among them), and months changed since their archive.
#[tokio::test]
async fn partitions_page_shows_detached_months_late_rows_and_changed_archives() {
    let app = App::start().await;
    let cookie = owner_cookie(&app).await;
    sqlx::raw_sql(
        "SELECT count(*) FROM bisman_ensure_partitions('client_usage_events', '2020-03-01', 2);
         INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
         SELECT t.id, 'old', '2020-03-05 00:00+00' FROM tenants t WHERE t.slug = 'demo';
         INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
         SELECT t.id, 'archived', '2020-04-05 00:00+00' FROM tenants t WHERE t.slug = 'demo';
         -- March was archived and dropped; a late row arrived after.
         INSERT INTO bisman_partition_archives
             (base_table, partition_name, range_start, range_end, row_count, file_name, file_sha256, format,
              content_checksum, verified_at, dropped_at)
         SELECT 'client_usage_events', 'client_usage_events_p2020_03', '2020-03-01', '2020-04-01', d.row_count,
                'march.csv.gz', repeat('a', 64), 'csv+gzip', d.checksum, now(), now()
         FROM bisman_rows_digest('client_usage_events_partitioned', 'client_usage_events_p2020_03') d;
         ALTER TABLE client_usage_events_partitioned DETACH PARTITION client_usage_events_p2020_03;
         DROP TABLE client_usage_events_p2020_03;
         INSERT INTO client_usage_events_partitioned (tenant_id, event_type, occurred_at)
         SELECT t.id, 'late', '2020-03-20 00:00+00' FROM tenants t WHERE t.slug = 'demo';
         -- April was archived, then changed.
         INSERT INTO bisman_partition_archives
             (base_table, partition_name, range_start, range_end, row_count, file_name, file_sha256, format,
              content_checksum, verified_at)
         SELECT 'client_usage_events', 'client_usage_events_p2020_04', '2020-04-01', '2020-05-01', d.row_count,
                'april.csv.gz', repeat('b', 64), 'csv+gzip', d.checksum, now()
         FROM bisman_rows_digest('client_usage_events_partitioned', 'client_usage_events_p2020_04') d;
         UPDATE client_usage_events_partitioned SET event_type = 'edited' WHERE event_type = 'archived';
         -- A month table an interrupted operation left behind.
         CREATE TABLE client_usage_events_p2041_01 (LIKE client_usage_events_partitioned);",
    )
    .execute(app.pool())
    .await
    .unwrap();
    let page = get(&app, "/ops/partitions", Some(&cookie)).await.text;
    assert_eq!(
        field(&page, "client_usage_events", "detached"),
        "detached 1"
    );
    assert!(
        field(&page, "client_usage_events", "default-rows").contains("(1 late)"),
        "{}",
        field(&page, "client_usage_events", "default-rows")
    );
    assert!(
        page.contains("late rows in the default partition for months already archived and dropped")
    );
    assert!(page
        .contains("<code>client_usage_events_p2041_01</code>: a month table that is not attached"));
    assert!(page.contains("data-default-month=\"2020-03\""));
    assert!(page.contains("id=\"changed-since-archive\""));
    assert!(page.contains("data-partition=\"client_usage_events_p2020_04\""));
    assert!(page.contains("april.csv.gz"));
}
