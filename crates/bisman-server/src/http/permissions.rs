//! `/api/v1/me/permissions` and `/api/v1/permissions/check`: the permission
//! cache's answers, for the caller only.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json as JsonResponse;
use bisman_cache::{Action, Permissions};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{check_key, Query};

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(my_permissions))
        .routes(routes!(check))
}

/// A user's effective permissions.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionsView {
    /// The user.
    user_id: i32,
    /// Their tenant.
    tenant_id: uuid::Uuid,
    /// Their type, as the database says.
    user_type: String,
    /// Module → page → allowed actions.
    modules: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl From<&Permissions> for PermissionsView {
    fn from(p: &Permissions) -> Self {
        PermissionsView {
            user_id: p.user_id.0,
            tenant_id: p.tenant_id.0,
            user_type: p.user_type.as_str().to_string(),
            modules: p
                .modules
                .iter()
                .map(|(module, pages)| {
                    let pages = pages
                        .iter()
                        .map(|(page, actions)| {
                            (
                                page.clone(),
                                actions.iter().map(|a| a.as_str().to_string()).collect(),
                            )
                        })
                        .collect();
                    (module.clone(), pages)
                })
                .collect(),
        }
    }
}

/// My effective permissions (modules bounded by my super admin, pages and
/// actions from my roles).
#[utoipa::path(get, path = "/me/permissions", tag = "permissions", security(("bearer" = [])),
    responses((status = 200, body = PermissionsView), (status = 401, body = ErrorBody),
              (status = 503, description = "Permissions cannot be read now (never a grant)", body = ErrorBody)))]
async fn my_permissions(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonResponse<PermissionsView>> {
    let perms = caller.permissions(&state).await?;
    Ok(JsonResponse(PermissionsView::from(&*perms)))
}

/// What to check.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    /// Module key (`payments`).
    module: String,
    /// Page key (`list`).
    page: String,
    /// `view` (default), `create`, `edit`, `delete` or `approve`.
    action: Option<String>,
}

/// The answer of a check.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// Module key.
    module: String,
    /// Page key.
    page: String,
    /// Action checked.
    action: String,
    /// Whether I may.
    allowed: bool,
}

/// May I do `action` on `page` of `module`? Answered from the near-cache
/// when possible; never stale after a revocation returned.
#[utoipa::path(get, path = "/permissions/check", tag = "permissions", security(("bearer" = [])),
    params(CheckQuery),
    responses((status = 200, body = CheckResult), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn check(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<CheckQuery>,
) -> ApiResult<JsonResponse<CheckResult>> {
    check_key("module", &q.module)?;
    check_key("page", &q.page)?;
    let action = match q.action.as_deref() {
        None => Action::View,
        Some(a) => Action::parse(a).ok_or_else(|| {
            ApiError::invalid("`action` must be view, create, edit, delete or approve")
        })?,
    };
    let perms = caller.permissions(&state).await?;
    let allowed = perms.allows(&q.module, &q.page, action);
    Ok(JsonResponse(CheckResult {
        module: q.module,
        page: q.page,
        action: action.as_str().to_string(),
        allowed,
    }))
}
