//! `/api/v1/auth`: log in, log out, refresh, my sessions, change password.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json as JsonResponse;
use bisman_cache::{IssuedSession, SessionToken};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::{password, Caller, ClientAddr};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{check_len, Json, Path};
use crate::queries::{audit, users};

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(refresh))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(change_password))
}

/// Credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Tenant slug (`demo`).
    tenant: String,
    /// E-mail (case-insensitive).
    email: String,
    /// Password.
    password: String,
}

/// Tokens: shown once, never stored by the service (only their hashes).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokensResponse {
    /// Session token: `Authorization: Bearer <token>`.
    token: String,
    /// Refresh token for `POST /auth/refresh`.
    refresh_token: String,
    /// The session's absolute end.
    expires_at: DateTime<Utc>,
    /// The refresh token's end.
    refresh_expires_at: DateTime<Utc>,
    /// The session ends after this many seconds without activity.
    idle_timeout_seconds: u64,
    /// Who is logged in.
    user: SessionUser,
}

/// The session's user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionUser {
    /// User id.
    id: i32,
    /// Tenant id.
    tenant_id: uuid::Uuid,
    /// `SUPER_ADMIN`, `ADMIN`, `MANAGER` or `STAFF`.
    user_type: String,
    /// Session id.
    session_id: i64,
}

fn tokens(state: &AppState, issued: IssuedSession) -> TokensResponse {
    TokensResponse {
        token: issued.token.expose().to_string(),
        refresh_token: issued.refresh_token.expose().to_string(),
        expires_at: issued.session.expires_at,
        refresh_expires_at: issued.refresh_expires_at,
        idle_timeout_seconds: state.cache.config().ttls.sessions.as_secs(),
        user: SessionUser {
            id: issued.session.user_id.0,
            tenant_id: issued.session.tenant_id.0,
            user_type: issued.session.user_type.as_str().to_string(),
            session_id: issued.session.session_id,
        },
    }
}

/// Log in with tenant, e-mail and password. Failed attempts are limited per
/// account and per client address (429 with `Retry-After`).
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokensResponse),
        (status = 400, body = ErrorBody), (status = 401, description = "Wrong credentials", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, description = "Too many failed attempts", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    Json(req): Json<LoginRequest>,
) -> ApiResult<JsonResponse<TokensResponse>> {
    check_len("tenant", &req.tenant, 1, 63)?;
    check_len("email", &req.email, 3, 320)?;
    check_len("password", &req.password, 1, 1024)?;
    let Some(account) =
        crate::auth::login::check_credentials(&state, &req.tenant, &req.email, req.password, &addr)
            .await?
    else {
        tracing::info!(tenant = %req.tenant, "login failed");
        return Err(ApiError::InvalidCredentials);
    };
    let issued = crate::auth::login::open_session(&state, &account, addr, &headers).await?;
    tracing::info!(user = %account.user_id, session = issued.session.session_id, "logged in");
    Ok(JsonResponse(tokens(&state, issued)))
}

/// End the current session, on every instance.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out"), (status = 401, body = ErrorBody)))]
async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    state
        .cache
        .sessions()
        .revoke_session(&caller.token_hash)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A refresh token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from login or the previous refresh.
    refresh_token: String,
}

/// Trade a refresh token for new tokens (the old ones stop working).
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokensResponse), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn refresh(
    State(state): State<AppState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<JsonResponse<TokensResponse>> {
    let token = SessionToken::parse(&req.refresh_token).ok_or(ApiError::Unauthenticated)?;
    let issued = state
        .cache
        .sessions()
        .refresh(&token)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(JsonResponse(tokens(&state, issued)))
}

/// One of my sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Session id.
    id: i64,
    /// Whether it is the session making this request.
    current: bool,
    /// When it began.
    created_at: DateTime<Utc>,
    /// Last activity recorded (up to a few minutes behind).
    last_seen_at: DateTime<Utc>,
    /// Its absolute end.
    expires_at: DateTime<Utc>,
    /// Address at login.
    ip_address: Option<String>,
    /// Client at login.
    user_agent: Option<String>,
}

/// My live sessions, newest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Vec<SessionView>), (status = 401, body = ErrorBody)))]
async fn list_sessions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonResponse<Vec<SessionView>>> {
    let list = state
        .cache
        .sessions()
        .list_user_sessions(caller.user())
        .await?;
    Ok(JsonResponse(
        list.into_iter()
            .map(|s| SessionView {
                id: s.session_id,
                current: s.session_id == caller.session.session_id,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                ip_address: s.ip_address,
                user_agent: s.user_agent,
            })
            .collect(),
    ))
}

/// End one of my sessions.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Session id")),
    responses((status = 204, description = "Ended"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_session(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let ended = state
        .cache
        .sessions()
        .revoke_session_by_id(caller.user(), id)
        .await?;
    if ended {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// A password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The current password.
    current_password: String,
    /// The new one (8 to 1024 characters).
    new_password: String,
}

/// Change my password; every other session of mine ends.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChange,
    responses((status = 204, description = "Changed; other sessions ended"),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, description = "Current password is wrong", body = ErrorBody),
              (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(addr): ClientAddr,
    Json(req): Json<PasswordChange>,
) -> ApiResult<StatusCode> {
    check_len("current_password", &req.current_password, 1, 1024)?;
    check_len("new_password", &req.new_password, 8, 1024)?;
    let key = format!("user:{}", caller.user());
    state
        .limiter
        .check(&key, &addr)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let stored = users::password_hash(&state.pool, caller.tenant(), caller.user()).await?;
    if !password::verify_blocking(req.current_password, stored).await {
        state.limiter.failed(&key, &addr);
        return Err(ApiError::forbidden("the current password is wrong"));
    }
    let hash = password::hash_blocking(req.new_password).await?;
    let mut tx = state.pool.begin().await?;
    users::set_password_hash(&mut tx, caller.tenant(), caller.user(), &hash).await?;
    audit::record(
        &mut tx,
        &audit::AuditEntry {
            tenant: caller.tenant(),
            actor: caller.user(),
            action: "user.password.change",
            entity_type: "user",
            entity_id: caller.user().to_string(),
            details: serde_json::json!({}),
            ip: &addr,
        },
    )
    .await?;
    tx.commit().await?;
    let ended = state
        .cache
        .sessions()
        .invalidate_user_sessions(caller.user(), Some(&caller.token_hash))
        .await?;
    tracing::info!(user = %caller.user(), other_sessions_ended = ended, "password changed");
    Ok(StatusCode::NO_CONTENT)
}
