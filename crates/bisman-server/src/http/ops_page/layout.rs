//! The frame every page shares (head, navigation, who is logged in) and
//! the headers every page response carries.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::Viewer;
use super::html::{h, text, Markup};

/// The pages, in navigation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// Database and cache health, maintenance runs.
    Overview,
    /// Partitions per managed table.
    Partitions,
    /// Slow queries.
    SlowQueries,
    /// Table access patterns.
    TableAccess,
    /// Cache hit rates.
    Cache,
    /// Read replicas.
    Replicas,
}

impl Nav {
    /// Every page.
    pub const ALL: [Nav; 6] = [
        Nav::Overview,
        Nav::Partitions,
        Nav::SlowQueries,
        Nav::TableAccess,
        Nav::Cache,
        Nav::Replicas,
    ];

    /// Its path.
    pub fn path(self) -> &'static str {
        match self {
            Nav::Overview => "/ops",
            Nav::Partitions => "/ops/partitions",
            Nav::SlowQueries => "/ops/slow-queries",
            Nav::TableAccess => "/ops/table-access",
            Nav::Cache => "/ops/cache",
            Nav::Replicas => "/ops/replicas",
        }
    }

    /// Its name in the navigation.
    pub fn label(self) -> &'static str {
        match self {
            Nav::Overview => "Overview",
            Nav::Partitions => "Partitions",
            Nav::SlowQueries => "Slow queries",
            Nav::TableAccess => "Table access",
            Nav::Cache => "Cache",
            Nav::Replicas => "Replicas",
        }
    }

    /// The page at `path`, the overview for anything else (which makes any
    /// `next` parameter safe to redirect to: it can only name a page).
    pub fn from_path(path: &str) -> Nav {
        Nav::ALL
            .into_iter()
            .find(|n| n.path() == path)
            .unwrap_or(Nav::Overview)
    }
}

/// A whole HTML document: `body` inside the frame, with the navigation and
/// a logout button when someone is logged in.
pub fn document(title: &'static str, nav: Option<(Nav, &Viewer)>, body: Markup) -> Markup {
    let mut out = Markup::new();
    h!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>",
        title,
        " · Bisman ops</title>",
        "<link rel=\"stylesheet\" href=\"/ops/assets/ops.css\">",
        "<script src=\"/ops/assets/ops.js\" defer></script>",
        "</head><body><header class=\"top\"><a class=\"brand\" href=\"/ops\">Bisman <span>ops</span></a>"
    );
    if let Some((active, viewer)) = nav {
        out.push("<nav>");
        for page in Nav::ALL {
            let current = if page == active {
                " aria-current=\"page\""
            } else {
                ""
            };
            h!(
                out,
                "<a href=\"",
                page.path(),
                "\"",
                current,
                ">",
                page.label(),
                "</a>"
            );
        }
        h!(
            out,
            "</nav><form class=\"who\" method=\"post\" action=\"/ops/logout\">",
            "<span>",
            text(&viewer.email),
            "</span>",
            csrf_field(viewer),
            "<button type=\"submit\" class=\"link\">Log out</button></form>"
        );
    }
    h!(out, "</header><main>", body, "</main></body></html>\n");
    out
}

/// The hidden field carrying the viewer's CSRF token.
pub fn csrf_field(viewer: &Viewer) -> Markup {
    let mut out = Markup::new();
    h!(
        out,
        "<input type=\"hidden\" name=\"csrf\" value=\"",
        text(viewer.csrf.as_str()),
        "\">"
    );
    out
}

/// Headers on every page: never cached, never framed (the buttons cannot
/// be clickjacked), scripts and styles only from this service, no referrer
/// to other sites. (`same-origin`, not `no-referrer`: under `no-referrer`
/// browsers send `Origin: null` with every form post, which the origin
/// check must refuse.)
const PAGE_HEADERS: [(&str, &str); 6] = [
    ("content-type", "text/html; charset=utf-8"),
    ("cache-control", "no-store"),
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("x-content-type-options", "nosniff"),
];

/// A page response.
pub fn respond(status: StatusCode, doc: Markup) -> Response {
    let mut response = (status, doc.into_string()).into_response();
    let headers = response.headers_mut();
    for (name, value) in PAGE_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// `303 See Other` to `to` (a path of ours).
pub fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, v);
    }
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// To the login form, coming back to `next` (a page path) afterwards.
pub fn to_login(next: &'static str) -> Response {
    if next == Nav::Overview.path() {
        redirect("/ops/login")
    } else {
        redirect(&format!("/ops/login?next={next}"))
    }
}
