//! The authenticated caller: a live session, and its permission checks.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bisman_cache::{Action, Permissions, Session, SessionToken, TenantId, TokenHash, UserId};

use crate::error::{ApiError, ApiResult};
use crate::http::AppState;

/// Who is calling: their live session (from the session cache) and the
/// hash of the token they presented.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The session.
    pub session: Session,
    /// SHA-256 of the presented token (to revoke exactly this session).
    pub token_hash: TokenHash,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|raw| SessionToken::parse(raw.trim()))
            .ok_or(ApiError::Unauthenticated)?;
        let session = state
            .cache
            .sessions()
            .get_session_with_fallback(&token)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(Caller {
            session,
            token_hash: token.hash(),
        })
    }
}

impl Caller {
    /// The user.
    pub fn user(&self) -> UserId {
        self.session.user_id
    }

    /// The user's tenant: every query a handler makes is scoped to it.
    pub fn tenant(&self) -> TenantId {
        self.session.tenant_id
    }

    /// The caller's effective permissions. A cache that cannot answer is a
    /// 503, never a grant; a user that no longer exists is a 401.
    pub async fn permissions(&self, state: &AppState) -> ApiResult<Arc<Permissions>> {
        state
            .cache
            .permissions()
            .get_user_permissions_with_fallback(self.user(), self.session.user_type)
            .await?
            .ok_or(ApiError::Unauthenticated)
    }

    /// The caller's permissions, provided they allow `action` on `page` of
    /// `module`; 403 otherwise.
    pub async fn require(
        &self,
        state: &AppState,
        module: &str,
        page: &str,
        action: Action,
    ) -> ApiResult<Arc<Permissions>> {
        let perms = self.permissions(state).await?;
        if perms.allows(module, page, action) {
            Ok(perms)
        } else {
            Err(ApiError::forbidden(format!(
                "this needs the `{}` action on page `{module}/{page}`",
                action.as_str()
            )))
        }
    }
}
