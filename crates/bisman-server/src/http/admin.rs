//! `/api/v1/admin`: roles and their page permissions, user roles, super
//! admins' modules and deactivation.
//!
//! Every change is permission-gated, recorded in `audit_logs` in its own
//! transaction, and followed (after commit) by the matching cache
//! invalidation, which returns once no instance serves the old answer.
//!
//! - Roles: `admin/roles` (`view`, `create`, `edit`, `delete`). Nobody can
//!   grant what they do not hold: every page and action a role is given must
//!   be allowed to the caller.
//! - User roles: `admin/users` (`view`, `edit`); the role's grants must be
//!   allowed to the caller, so assigning cannot widen anyone past the caller.
//! - Super admins (module assignment, deactivation): platform operators only
//!   (`platform_operators`, granted by SQL, never through the API). An
//!   operator cannot change the super admin whose modules bound their own
//!   access: nobody widens their own permissions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json as JsonResponse;
use bisman_cache::{Action, InvalidationEvent, Permissions, RoleId, SuperAdminId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use crate::auth::{Caller, ClientAddr};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{check_key, check_len, Json, Path};
use crate::queries::admin::{self as q, Grant, Role, SuperAdminView, UserView};
use crate::queries::audit::{self, AuditEntry};

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles, create_role))
        .routes(routes!(replace_permissions))
        .routes(routes!(delete_role))
        .routes(routes!(list_users))
        .routes(routes!(assign_role, unassign_role))
        .routes(routes!(list_super_admins))
        .routes(routes!(assign_module, unassign_module))
        .routes(routes!(deactivate_super_admin))
}

/// After a committed change: invalidate, or say that the caches could not
/// be told (the change stands; TTLs bound the staleness).
fn invalidated<T>(result: bisman_cache::Result<T>) -> ApiResult<T> {
    result.map_err(|e| {
        tracing::error!(error = %e, "change committed but cache invalidation failed");
        ApiError::Unavailable(format!("change committed; cache invalidation failed: {e}"))
    })
}

/// Checks that the caller holds every page and action of `grants`.
fn ensure_within(perms: &Permissions, grants: &[Grant]) -> ApiResult<()> {
    for g in grants {
        for a in &g.actions {
            let action = Action::parse(a).ok_or_else(|| ApiError::invalid("unknown action"))?;
            if !perms.allows(&g.module, &g.page, action) {
                return Err(ApiError::forbidden(format!(
                    "you cannot grant `{a}` on `{}/{}`: you do not hold it",
                    g.module, g.page
                )));
            }
        }
    }
    Ok(())
}

/// The tenant's roles with their page permissions.
#[utoipa::path(get, path = "/admin/roles", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<Role>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_roles(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonResponse<Vec<Role>>> {
    caller
        .require(&state, "admin", "roles", Action::View)
        .await?;
    Ok(JsonResponse(
        q::list_roles(&state.pool, caller.tenant()).await?,
    ))
}

/// A new role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// Name, unique in the tenant (1 to 100 characters).
    name: String,
    /// Description (at most 1000 characters).
    #[serde(default)]
    description: String,
}

/// Create a role (without permissions).
#[utoipa::path(post, path = "/admin/roles", tag = "admin", security(("bearer" = [])), request_body = NewRole,
    responses((status = 201, body = Role), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_role(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Json(req): Json<NewRole>,
) -> ApiResult<(StatusCode, JsonResponse<Role>)> {
    check_len("name", req.name.trim(), 1, 100)?;
    check_len("description", &req.description, 0, 1000)?;
    caller
        .require(&state, "admin", "roles", Action::Create)
        .await?;
    let mut tx = state.pool.begin().await?;
    let id = q::create_role(&mut tx, caller.tenant(), req.name.trim(), &req.description).await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            tenant: caller.tenant(),
            actor: caller.user(),
            action: "role.create",
            entity_type: "role",
            entity_id: id.to_string(),
            details: json!({ "name": req.name.trim() }),
            ip: &ip,
        },
    )
    .await?;
    let role = q::get_role(&mut tx, caller.tenant(), id)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, JsonResponse(role)))
}

/// A role's complete set of page permissions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePermissionsBody {
    /// Every page the role grants (pages not listed are revoked); at most 500.
    permissions: Vec<Grant>,
}

fn validate_grants(grants: &[Grant]) -> ApiResult<()> {
    if grants.len() > 500 {
        return Err(ApiError::invalid("at most 500 page permissions per role"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for g in grants {
        check_key("module", &g.module)?;
        check_key("page", &g.page)?;
        if g.actions.is_empty() || g.actions.len() > 5 {
            return Err(ApiError::invalid(
                "`actions` must list 1 to 5 of view, create, edit, delete, approve (leave a page out to revoke it)",
            ));
        }
        if g.actions.iter().any(|a| Action::parse(a).is_none()) {
            return Err(ApiError::invalid(
                "`actions` may only hold view, create, edit, delete and approve",
            ));
        }
        if !seen.insert((&g.module, &g.page)) {
            return Err(ApiError::invalid(format!(
                "page `{}/{}` is listed twice",
                g.module, g.page
            )));
        }
    }
    Ok(())
}

/// Replace a role's page permissions. Every user holding the role sees the
/// change on every instance once this returns.
#[utoipa::path(put, path = "/admin/roles/{role_id}/permissions", tag = "admin", security(("bearer" = [])),
    params(("role_id" = i32, Path, description = "Role id")), request_body = RolePermissionsBody,
    responses((status = 200, body = Role), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn replace_permissions(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path(role_id): Path<i32>,
    Json(req): Json<RolePermissionsBody>,
) -> ApiResult<JsonResponse<Role>> {
    validate_grants(&req.permissions)?;
    let perms = caller
        .require(&state, "admin", "roles", Action::Edit)
        .await?;
    let role = RoleId(role_id);
    let mut tx = state.pool.begin().await?;
    if !q::lock_role(&mut tx, caller.tenant(), role).await? {
        return Err(ApiError::NotFound);
    }
    let before = q::get_role(&mut tx, caller.tenant(), role).await?;
    let pairs: Vec<(String, String)> = req
        .permissions
        .iter()
        .map(|g| (g.module.clone(), g.page.clone()))
        .collect();
    let ids = q::page_ids(&mut tx, &pairs).await?;
    let mut rows = Vec::new();
    for (g, id) in req.permissions.iter().zip(ids) {
        let id = id.ok_or_else(|| {
            ApiError::invalid(format!("there is no page `{}/{}`", g.module, g.page))
        })?;
        rows.push((id, g.actions.clone()));
    }
    ensure_within(&perms, &req.permissions)?;
    q::replace_role_permissions(&mut tx, role, &rows).await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            tenant: caller.tenant(),
            actor: caller.user(),
            action: "role.permissions.replace",
            entity_type: "role",
            entity_id: role.to_string(),
            details: json!({
                "before": before.map(|r| r.permissions),
                "after": &req.permissions,
            }),
            ip: &ip,
        },
    )
    .await?;
    let after = q::get_role(&mut tx, caller.tenant(), role)
        .await?
        .ok_or(ApiError::NotFound)?;
    tx.commit().await?;
    invalidated(
        state
            .cache
            .permissions()
            .invalidate_role_permissions(role)
            .await,
    )?;
    Ok(JsonResponse(after))
}

/// Delete a role; its holders lose it everywhere once this returns.
#[utoipa::path(delete, path = "/admin/roles/{role_id}", tag = "admin", security(("bearer" = [])),
    params(("role_id" = i32, Path, description = "Role id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path(role_id): Path<i32>,
) -> ApiResult<StatusCode> {
    caller
        .require(&state, "admin", "roles", Action::Delete)
        .await?;
    let role = RoleId(role_id);
    let mut tx = state.pool.begin().await?;
    let before = q::get_role(&mut tx, caller.tenant(), role).await?;
    let holders = q::delete_role(&mut tx, caller.tenant(), role)
        .await?
        .ok_or(ApiError::NotFound)?;
    audit::record(
        &mut tx,
        &AuditEntry {
            tenant: caller.tenant(),
            actor: caller.user(),
            action: "role.delete",
            entity_type: "role",
            entity_id: role.to_string(),
            details: json!({ "role": before.map(|r| json!({"name": r.name, "permissions": r.permissions})),
                             "holders": holders.iter().map(|u| u.0).collect::<Vec<_>>() }),
            ip: &ip,
        },
    )
    .await?;
    tx.commit().await?;
    let cache = state.cache.permissions();
    invalidated(cache.invalidate_role_permissions(role).await)?;
    for user in holders {
        invalidated(cache.invalidate_user_permissions(user).await)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's users and their roles.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<UserView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonResponse<Vec<UserView>>> {
    caller
        .require(&state, "admin", "users", Action::View)
        .await?;
    Ok(JsonResponse(
        q::list_users(&state.pool, caller.tenant()).await?,
    ))
}

/// Give a user a role.
#[utoipa::path(put, path = "/admin/users/{user_id}/roles/{role_id}", tag = "admin", security(("bearer" = [])),
    params(("user_id" = i32, Path, description = "User id"), ("role_id" = i32, Path, description = "Role id")),
    responses((status = 204, description = "Assigned (or already held)"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn assign_role(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path((user_id, role_id)): Path<(i32, i32)>,
) -> ApiResult<StatusCode> {
    change_user_role(&state, &caller, &ip, UserId(user_id), RoleId(role_id), true).await
}

/// Take a role from a user; they lose it everywhere once this returns.
#[utoipa::path(delete, path = "/admin/users/{user_id}/roles/{role_id}", tag = "admin", security(("bearer" = [])),
    params(("user_id" = i32, Path, description = "User id"), ("role_id" = i32, Path, description = "Role id")),
    responses((status = 204, description = "Unassigned"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, description = "No such user, role, or assignment", body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn unassign_role(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path((user_id, role_id)): Path<(i32, i32)>,
) -> ApiResult<StatusCode> {
    change_user_role(
        &state,
        &caller,
        &ip,
        UserId(user_id),
        RoleId(role_id),
        false,
    )
    .await
}

async fn change_user_role(
    state: &AppState,
    caller: &Caller,
    ip: &str,
    user: UserId,
    role: RoleId,
    assign: bool,
) -> ApiResult<StatusCode> {
    let perms = caller
        .require(state, "admin", "users", Action::Edit)
        .await?;
    let mut tx = state.pool.begin().await?;
    if !q::user_in_tenant(&mut tx, caller.tenant(), user).await? {
        return Err(ApiError::NotFound);
    }
    if !q::lock_role(&mut tx, caller.tenant(), role).await? {
        return Err(ApiError::NotFound);
    }
    let changed = if assign {
        let grants = q::get_role(&mut tx, caller.tenant(), role)
            .await?
            .map(|r| r.permissions)
            .unwrap_or_default();
        ensure_within(&perms, &grants)?;
        q::assign_role(&mut tx, user, role).await?
    } else if q::unassign_role(&mut tx, user, role).await? {
        true
    } else {
        return Err(ApiError::NotFound);
    };
    if changed {
        audit::record(
            &mut tx,
            &AuditEntry {
                tenant: caller.tenant(),
                actor: caller.user(),
                action: if assign {
                    "user.role.assign"
                } else {
                    "user.role.unassign"
                },
                entity_type: "user",
                entity_id: user.to_string(),
                details: json!({ "role_id": role.0 }),
                ip,
            },
        )
        .await?;
    }
    tx.commit().await?;
    if changed {
        invalidated(
            state
                .cache
                .invalidate(InvalidationEvent::UserPermissionsChanged, user.0)
                .await,
        )?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn require_operator(state: &AppState, caller: &Caller) -> ApiResult<()> {
    if q::is_platform_operator(&state.pool, caller.tenant(), caller.user()).await? {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only platform operators manage super admins",
        ))
    }
}

/// The tenant's super admins and their modules (platform operators).
#[utoipa::path(get, path = "/admin/super-admins", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<SuperAdminView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_super_admins(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<JsonResponse<Vec<SuperAdminView>>> {
    require_operator(&state, &caller).await?;
    Ok(JsonResponse(
        q::list_super_admins(&state.pool, caller.tenant()).await?,
    ))
}

/// Assign a module to a super admin (platform operators).
#[utoipa::path(put, path = "/admin/super-admins/{super_admin_id}/modules/{module}", tag = "admin",
    security(("bearer" = [])),
    params(("super_admin_id" = i32, Path, description = "super_admins.id"), ("module" = String, Path, description = "Module key")),
    responses((status = 204, description = "Assigned (or already)"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn assign_module(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path((sa, module)): Path<(i32, String)>,
) -> ApiResult<StatusCode> {
    change_module(&state, &caller, &ip, SuperAdminId(sa), &module, true).await
}

/// Unassign a module from a super admin (platform operators); the users
/// under them lose it everywhere once this returns.
#[utoipa::path(delete, path = "/admin/super-admins/{super_admin_id}/modules/{module}", tag = "admin",
    security(("bearer" = [])),
    params(("super_admin_id" = i32, Path, description = "super_admins.id"), ("module" = String, Path, description = "Module key")),
    responses((status = 204, description = "Unassigned"), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody)))]
async fn unassign_module(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path((sa, module)): Path<(i32, String)>,
) -> ApiResult<StatusCode> {
    change_module(&state, &caller, &ip, SuperAdminId(sa), &module, false).await
}

async fn change_module(
    state: &AppState,
    caller: &Caller,
    ip: &str,
    sa: SuperAdminId,
    module: &str,
    assign: bool,
) -> ApiResult<StatusCode> {
    require_operator(state, caller).await?;
    check_key("module", module).map_err(|_| ApiError::NotFound)?;
    let mut tx = state.pool.begin().await?;
    let bounds_caller = q::lock_super_admin(&mut tx, caller.tenant(), sa, caller.user())
        .await?
        .ok_or(ApiError::NotFound)?;
    if bounds_caller {
        return Err(ApiError::forbidden(
            "you cannot change the modules of the super admin that bounds your own access",
        ));
    }
    let module_id = q::module_id(&mut tx, module)
        .await?
        .ok_or(ApiError::NotFound)?;
    let changed = if assign {
        q::assign_module(&mut tx, sa, module_id).await?
    } else if q::unassign_module(&mut tx, sa, module_id).await? {
        true
    } else {
        return Err(ApiError::NotFound);
    };
    if changed {
        audit::record(
            &mut tx,
            &AuditEntry {
                tenant: caller.tenant(),
                actor: caller.user(),
                action: if assign {
                    "super_admin.module.assign"
                } else {
                    "super_admin.module.unassign"
                },
                entity_type: "super_admin",
                entity_id: sa.to_string(),
                details: json!({ "module": module }),
                ip,
            },
        )
        .await?;
    }
    tx.commit().await?;
    if changed {
        invalidated(
            state
                .cache
                .invalidate(InvalidationEvent::ModuleAssignmentsChanged, sa.0)
                .await,
        )?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The result of a deactivation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deactivated {
    /// `super_admins.id`.
    super_admin_id: i32,
    /// Whether it was active until now.
    changed: bool,
    /// Sessions of the super admin that were ended.
    sessions_ended: u64,
}

/// Deactivate a super admin (platform operators): their users lose every
/// module and their own sessions end, on every instance, once this returns.
#[utoipa::path(post, path = "/admin/super-admins/{super_admin_id}/deactivate", tag = "admin",
    security(("bearer" = [])), params(("super_admin_id" = i32, Path, description = "super_admins.id")),
    responses((status = 200, body = Deactivated), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn deactivate_super_admin(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    Path(sa): Path<i32>,
) -> ApiResult<JsonResponse<Deactivated>> {
    require_operator(&state, &caller).await?;
    let sa = SuperAdminId(sa);
    let mut tx = state.pool.begin().await?;
    let bounds_caller = q::lock_super_admin(&mut tx, caller.tenant(), sa, caller.user())
        .await?
        .ok_or(ApiError::NotFound)?;
    if bounds_caller {
        return Err(ApiError::forbidden(
            "you cannot deactivate the super admin that bounds your own access",
        ));
    }
    let changed = q::deactivate_super_admin(&mut tx, sa).await?;
    if changed {
        audit::record(
            &mut tx,
            &AuditEntry {
                tenant: caller.tenant(),
                actor: caller.user(),
                action: "super_admin.deactivate",
                entity_type: "super_admin",
                entity_id: sa.to_string(),
                details: json!({}),
                ip: &ip,
            },
        )
        .await?;
    }
    tx.commit().await?;
    let mut sessions_ended = 0;
    if changed {
        let report = invalidated(
            state
                .cache
                .invalidate(InvalidationEvent::SuperAdminDeactivated, sa.0)
                .await,
        )?;
        sessions_ended = report.sessions_ended;
    }
    Ok(JsonResponse(Deactivated {
        super_admin_id: sa.0,
        changed,
        sessions_ended,
    }))
}
