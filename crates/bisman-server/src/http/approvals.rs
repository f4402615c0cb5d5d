//! `/api/v1/approvals`: my pending approvals, approve and reject
//! (`expenses/approvals`: `view` to list, `approve` to decide). The list is
//! read on a replica when one may answer; decisions lock and write on the
//! primary.

use axum::extract::State;
use axum::Json as JsonResponse;
use bisman_cache::Action;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::{Caller, ClientAddr};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{check_len, optional_json, page_size, Path, Query};
use crate::queries::approvals::{self as q, PendingApproval};
use crate::queries::audit::{self, AuditEntry};
use crate::routing::Reads;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pending))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// Page size.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// 1 to 200 (default 50).
    limit: Option<i64>,
}

/// Approvals waiting for me, oldest first.
#[utoipa::path(get, path = "/approvals/pending", tag = "approvals", security(("bearer" = [])), params(Limit),
    responses((status = 200, body = Vec<PendingApproval>), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn pending(
    State(state): State<AppState>,
    caller: Caller,
    reads: Reads,
    Query(l): Query<Limit>,
) -> ApiResult<JsonResponse<Vec<PendingApproval>>> {
    let limit = page_size(l.limit, 50, 200)?;
    caller
        .require(&state, "expenses", "approvals", Action::View)
        .await?;
    let (tenant, user) = (caller.tenant(), caller.user());
    Ok(JsonResponse(
        reads
            .run(|db| async move { q::pending(&db, tenant, user, limit).await })
            .await?,
    ))
}

/// A decision's comment.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Optional comment (at most 2000 characters).
    comment: Option<String>,
}

/// The outcome of a decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct Decided {
    /// Approval id.
    approval_id: i32,
    /// `APPROVED` or `REJECTED`.
    status: String,
    /// The expense's status now.
    expense_status: String,
}

/// Approve.
#[utoipa::path(post, path = "/approvals/{approval_id}/approve", tag = "approvals", security(("bearer" = [])),
    params(("approval_id" = i32, Path, description = "Approval id")), request_body(content = Option<Decision>),
    responses((status = 200, body = Decided), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "Already decided", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path(id): Path<i32>,
    body: axum::body::Bytes,
) -> ApiResult<JsonResponse<Decided>> {
    decide(&state, &caller, &ip, id, true, optional_json(&body)?).await
}

/// Reject.
#[utoipa::path(post, path = "/approvals/{approval_id}/reject", tag = "approvals", security(("bearer" = [])),
    params(("approval_id" = i32, Path, description = "Approval id")), request_body(content = Option<Decision>),
    responses((status = 200, body = Decided), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "Already decided", body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path(id): Path<i32>,
    body: axum::body::Bytes,
) -> ApiResult<JsonResponse<Decided>> {
    decide(&state, &caller, &ip, id, false, optional_json(&body)?).await
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    ip: &str,
    id: i32,
    approve: bool,
    d: Decision,
) -> ApiResult<JsonResponse<Decided>> {
    if let Some(c) = &d.comment {
        check_len("comment", c, 0, 2000)?;
        if c.contains('\0') {
            return Err(ApiError::invalid(
                "`comment` must not contain NUL characters",
            ));
        }
    }
    caller
        .require(state, "expenses", "approvals", Action::Approve)
        .await?;
    let mut tx = state.pool.begin().await?;
    let (expense, status) = q::lock(&mut tx, caller.tenant(), caller.user(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if status != "PENDING" {
        return Err(ApiError::Conflict(format!(
            "this approval is already {status}"
        )));
    }
    let expense_status = q::decide(
        &mut tx,
        caller.tenant(),
        id,
        expense,
        approve,
        d.comment.as_deref(),
    )
    .await?;
    let status = if approve { "APPROVED" } else { "REJECTED" };
    audit::record(
        &mut tx,
        &AuditEntry {
            tenant: caller.tenant(),
            actor: caller.user(),
            action: if approve {
                "approval.approve"
            } else {
                "approval.reject"
            },
            entity_type: "approval",
            entity_id: id.to_string(),
            details: json!({ "expense_id": expense, "expense_status": expense_status }),
            ip,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(JsonResponse(Decided {
        approval_id: id,
        status: status.into(),
        expense_status,
    }))
}
