//! Password login, shared by the API and the ops page: one place for the
//! rate limits, the password check and the session it opens.

use axum::http::header::USER_AGENT;
use axum::http::HeaderMap;
use bisman_cache::{IssuedSession, NewSession};

use super::{password, LoginLimiter};
use crate::error::{ApiError, ApiResult};
use crate::http::AppState;
use crate::queries::users::{self, LoginAccount};

/// Checks `tenant`, `email` and `password` from `addr` under the login rate
/// limits (429 when exceeded). `Ok(None)` for an unknown account, a wrong
/// password or an inactive account, counted as a failure; the password is
/// hashed even for an unknown account, so the answer takes as long.
pub async fn check_credentials(
    state: &AppState,
    tenant: &str,
    email: &str,
    password: String,
    addr: &str,
) -> ApiResult<Option<LoginAccount>> {
    let key = LoginLimiter::account_key(tenant, email);
    state
        .limiter
        .check(&key, addr)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let account = users::find_for_login(&state.pool, tenant, email).await?;
    let stored = account.as_ref().map(|a| a.password_hash.clone());
    let matches = password::verify_blocking(password, stored).await;
    match account {
        Some(a) if matches && a.active => {
            state.limiter.succeeded(&key);
            Ok(Some(a))
        }
        _ => {
            state.limiter.failed(&key, addr);
            Ok(None)
        }
    }
}

/// Opens a session for `account`, recording the client's address and (at
/// most 300 characters of) its user agent.
pub async fn open_session(
    state: &AppState,
    account: &LoginAccount,
    addr: String,
    headers: &HeaderMap,
) -> ApiResult<IssuedSession> {
    let user_agent = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(300).collect());
    Ok(state
        .cache
        .sessions()
        .create_session(&NewSession {
            tenant_id: account.tenant_id,
            user_id: account.user_id,
            user_type: account.user_type,
            ip_address: Some(addr),
            user_agent,
        })
        .await?)
}
