//! `GET/POST /ops/login` and `POST /ops/logout`.
//!
//! Login follows `POST /api/v1/auth/login` (same rate limits, same
//! constant-time answer for unknown accounts, same session cache) and adds
//! one rule: only an account allowed to see the ops page gets a session
//! here; anyone else gets the 403 page and no cookie.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use super::auth::{self, Viewer};
use super::error::PageError;
use super::html::{h, text, Markup};
use super::layout::{self, Nav};
use crate::auth::ClientAddr;
use crate::http::AppState;

/// Where to go after logging in.
#[derive(Debug, Default, Deserialize)]
pub struct NextPage {
    /// A page path (anything else means the overview).
    #[serde(default)]
    next: Option<String>,
}

/// The login form's fields.
#[derive(Deserialize)]
pub struct LoginForm {
    tenant: String,
    email: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

fn next_page(next: Option<&str>) -> &'static str {
    Nav::from_path(next.unwrap_or_default()).path()
}

/// The login form (or straight on, when already logged in as an operator).
pub async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<NextPage>, QueryRejection>,
) -> Response {
    let next = next_page(query.ok().and_then(|q| q.0.next).as_deref());
    if let Some(token) = auth::session_token(&headers) {
        if let Ok(Some(s)) = state
            .cache
            .sessions()
            .get_session_with_fallback(&token)
            .await
        {
            if matches!(
                auth::may_operate(&state, s.user_id, s.user_type).await,
                Ok(true)
            ) {
                return layout::redirect(next);
            }
        }
    }
    login_page(StatusCode::OK, next, None, "", "")
}

fn login_page(
    status: StatusCode,
    next: &'static str,
    problem: Option<&'static str>,
    tenant: &str,
    email: &str,
) -> Response {
    let mut body = Markup::new();
    h!(
        body,
        "<section class=\"card narrow login\"><h1>Log in</h1>",
        "<p class=\"muted\">For super admins holding <code>admin/ops</code>.</p>"
    );
    if let Some(problem) = problem {
        h!(
            body,
            "<p class=\"flash bad\" role=\"alert\">",
            problem,
            "</p>"
        );
    }
    h!(
        body,
        "<form method=\"post\" action=\"/ops/login\">",
        "<input type=\"hidden\" name=\"next\" value=\"",
        next,
        "\">",
        "<label>Tenant<input name=\"tenant\" required autocomplete=\"organization\" value=\"",
        text(tenant),
        "\" placeholder=\"demo\"></label>",
        "<label>E-mail<input name=\"email\" type=\"email\" required autocomplete=\"username\" value=\"",
        text(email),
        "\"></label>",
        "<label>Password<input name=\"password\" type=\"password\" required autocomplete=\"current-password\"></label>",
        "<button type=\"submit\">Log in</button></form></section>"
    );
    layout::respond(status, layout::document("Log in", None, body))
}

/// Checks the credentials; an operator gets a session cookie and goes on.
pub async fn submit(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, PageError> {
    auth::check_origin(&headers)?;
    let next = next_page(f.next.as_deref());
    let too_long = f.tenant.len() > 63 || f.email.len() > 320 || f.password.len() > 1024;
    if too_long || f.tenant.is_empty() || f.email.is_empty() || f.password.is_empty() {
        return Ok(login_page(
            StatusCode::UNPROCESSABLE_ENTITY,
            next,
            Some("Fill in tenant, e-mail and password."),
            "",
            "",
        ));
    }
    let Some(account) =
        crate::auth::login::check_credentials(&state, &f.tenant, &f.email, f.password, &addr)
            .await?
    else {
        tracing::info!(tenant = %f.tenant, "ops page login failed");
        return Ok(login_page(
            StatusCode::UNAUTHORIZED,
            next,
            Some("Invalid tenant, e-mail or password."),
            &f.tenant,
            &f.email,
        ));
    };
    if !auth::may_operate(&state, account.user_id, account.user_type).await? {
        tracing::info!(user = %account.user_id, "ops page login refused: not an operator");
        return Err(PageError::Forbidden);
    }
    let issued = crate::auth::login::open_session(&state, &account, addr, &headers).await?;
    tracing::info!(user = %account.user_id, session = issued.session.session_id, "ops page login");
    let mut response = layout::redirect(next);
    response.headers_mut().insert(
        SET_COOKIE,
        auth::session_cookie(&issued.token, auth::over_https(&headers)),
    );
    Ok(response)
}

/// The logout form's field.
#[derive(Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

/// Ends the session (on every instance) and drops the cookie.
pub async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    viewer.check_form(&headers, &f.csrf)?;
    state
        .cache
        .sessions()
        .revoke_session(&viewer.token_hash)
        .await?;
    let mut response = layout::redirect("/ops/login");
    response
        .headers_mut()
        .insert(SET_COOKIE, auth::clear_cookie());
    Ok(response.into_response())
}
