//! Reading permissions from the ERP's tables (the truth behind the cache).

use std::collections::{BTreeMap, BTreeSet};

use sqlx::PgPool;

use super::model::{Action, ModuleAssignments, RolePermissions};
use crate::error::{CacheError, Result};
use crate::ids::{RoleId, SuperAdminId, TenantId, UserId, UserType};

/// The facts about a user that permissions are composed from.
#[derive(Debug, Clone)]
pub(crate) struct UserFacts {
    pub tenant_id: TenantId,
    pub user_type: UserType,
    /// User and tenant both active.
    pub active: bool,
    /// The super admin whose modules bound this user (their own row for a super admin).
    pub super_admin: Option<SuperAdminId>,
    /// Roles of the user in their own tenant.
    pub roles: Vec<RoleId>,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    tenant_id: uuid::Uuid,
    user_type: String,
    active: bool,
    super_admin: Option<i32>,
    roles: Vec<i32>,
}

#[tracing::instrument(skip(pool))]
pub(crate) async fn user_facts(pool: &PgPool, user: UserId) -> Result<Option<UserFacts>> {
    let row: Option<UserRow> = sqlx::query_as(
        "SELECT u.tenant_id, u.user_type, u.is_active AND t.is_active AS active,
                CASE WHEN u.user_type = 'SUPER_ADMIN'
                     THEN (SELECT s.id FROM super_admins s WHERE s.user_id = u.id AND s.tenant_id = u.tenant_id)
                     ELSE u.super_admin_id END AS super_admin,
                ARRAY(SELECT r.id FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                      WHERE ur.user_id = u.id AND r.tenant_id = u.tenant_id ORDER BY r.id) AS roles
         FROM users u JOIN tenants t ON t.id = u.tenant_id
         WHERE u.id = $1",
    )
    .bind(user.0)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let user_type = row
        .user_type
        .parse()
        .map_err(|e| CacheError::Unavailable(format!("user {user}: {e}")))?;
    Ok(Some(UserFacts {
        tenant_id: TenantId(row.tenant_id),
        user_type,
        active: row.active,
        super_admin: row.super_admin.map(SuperAdminId),
        roles: row.roles.into_iter().map(RoleId).collect(),
    }))
}

#[tracing::instrument(skip(pool))]
pub(crate) async fn role_permissions(
    pool: &PgPool,
    role: RoleId,
) -> Result<Option<RolePermissions>> {
    let tenant: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM roles WHERE id = $1")
            .bind(role.0)
            .fetch_optional(pool)
            .await?;
    let Some(tenant) = tenant else {
        return Ok(None);
    };
    let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT m.key, p.key, rp.actions
         FROM role_permissions rp JOIN pages p ON p.id = rp.page_id JOIN modules m ON m.id = p.module_id
         WHERE rp.role_id = $1",
    )
    .bind(role.0)
    .fetch_all(pool)
    .await?;
    let mut modules: BTreeMap<String, BTreeMap<String, BTreeSet<Action>>> = BTreeMap::new();
    for (module, page, actions) in rows {
        let set: BTreeSet<Action> = actions.iter().filter_map(|a| Action::parse(a)).collect();
        modules
            .entry(module)
            .or_default()
            .entry(page)
            .or_default()
            .extend(set);
    }
    Ok(Some(RolePermissions {
        role_id: role,
        tenant_id: TenantId(tenant),
        modules,
    }))
}

#[tracing::instrument(skip(pool))]
pub(crate) async fn module_assignments(
    pool: &PgPool,
    sa: SuperAdminId,
) -> Result<Option<ModuleAssignments>> {
    let head: Option<(uuid::Uuid, bool)> =
        sqlx::query_as("SELECT tenant_id, is_active FROM super_admins WHERE id = $1")
            .bind(sa.0)
            .fetch_optional(pool)
            .await?;
    let Some((tenant, active)) = head else {
        return Ok(None);
    };
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT m.key, p.key
         FROM super_admin_modules sam JOIN modules m ON m.id = sam.module_id
         LEFT JOIN pages p ON p.module_id = m.id
         WHERE sam.super_admin_id = $1",
    )
    .bind(sa.0)
    .fetch_all(pool)
    .await?;
    let mut modules: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, page) in rows {
        let pages = modules.entry(module).or_default();
        if let Some(p) = page {
            pages.insert(p);
        }
    }
    Ok(Some(ModuleAssignments {
        super_admin_id: sa,
        tenant_id: TenantId(tenant),
        active,
        modules,
    }))
}

/// Users whose permissions depend on `role`.
pub(crate) async fn users_with_role(pool: &PgPool, role: RoleId) -> Result<Vec<UserId>> {
    let ids: Vec<i32> = sqlx::query_scalar("SELECT user_id FROM user_roles WHERE role_id = $1")
        .bind(role.0)
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// Users whose permissions depend on `sa` (those under it, and the super
/// admin's own user).
pub(crate) async fn users_of_super_admin(pool: &PgPool, sa: SuperAdminId) -> Result<Vec<UserId>> {
    let ids: Vec<i32> = sqlx::query_scalar(
        "SELECT id FROM users WHERE super_admin_id = $1 UNION SELECT user_id FROM super_admins WHERE id = $1",
    )
    .bind(sa.0)
    .fetch_all(pool)
    .await?;
    Ok(ids.into_iter().map(UserId).collect())
}

/// The user a super admin is.
pub(crate) async fn super_admin_user(pool: &PgPool, sa: SuperAdminId) -> Result<Option<UserId>> {
    let id: Option<i32> = sqlx::query_scalar("SELECT user_id FROM super_admins WHERE id = $1")
        .bind(sa.0)
        .fetch_optional(pool)
        .await?;
    Ok(id.map(UserId))
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    tenant_id: uuid::Uuid,
    user_type: String,
    module: Option<String>,
    page: Option<String>,
    actions: Option<Vec<String>>,
}

/// A user's effective permissions in one round trip, by the same rules as
/// the layered composition (used when there is no cache to share the
/// role and module layers with).
#[tracing::instrument(skip(pool))]
pub(crate) async fn effective_permissions(
    pool: &PgPool,
    user: UserId,
) -> Result<Option<super::Permissions>> {
    let rows: Vec<GrantRow> = sqlx::query_as(
        "WITH u AS (
             SELECT u.id, u.tenant_id, u.user_type, u.is_active AND t.is_active AS active,
                    CASE WHEN u.user_type = 'SUPER_ADMIN'
                         THEN (SELECT s.id FROM super_admins s WHERE s.user_id = u.id AND s.tenant_id = u.tenant_id)
                         ELSE u.super_admin_id END AS sa
             FROM users u JOIN tenants t ON t.id = u.tenant_id WHERE u.id = $1
         ), mods AS (
             SELECT sam.module_id FROM u
             JOIN super_admins s ON s.id = u.sa AND s.is_active AND s.tenant_id = u.tenant_id
             JOIN super_admin_modules sam ON sam.super_admin_id = s.id
             WHERE u.active
         ), grants AS (
             SELECT m.key AS module, p.key AS page,
                    ARRAY['view', 'create', 'edit', 'delete', 'approve'] AS actions
             FROM u JOIN mods ON true JOIN modules m ON m.id = mods.module_id JOIN pages p ON p.module_id = m.id
             WHERE u.user_type = 'SUPER_ADMIN'
             UNION ALL
             SELECT m.key, p.key, rp.actions
             FROM u JOIN user_roles ur ON ur.user_id = u.id
             JOIN roles r ON r.id = ur.role_id AND r.tenant_id = u.tenant_id
             JOIN role_permissions rp ON rp.role_id = r.id
             JOIN pages p ON p.id = rp.page_id JOIN modules m ON m.id = p.module_id
             WHERE u.user_type <> 'SUPER_ADMIN' AND p.module_id IN (SELECT module_id FROM mods)
         )
         SELECT u.tenant_id, u.user_type, g.module, g.page, g.actions FROM u LEFT JOIN grants g ON true",
    )
    .bind(user.0)
    .fetch_all(pool)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let user_type = first
        .user_type
        .parse()
        .map_err(|e| CacheError::Unavailable(format!("user {user}: {e}")))?;
    let mut out = super::Permissions {
        user_id: user,
        tenant_id: TenantId(first.tenant_id),
        user_type,
        modules: BTreeMap::new(),
    };
    for r in rows {
        let (Some(module), Some(page), Some(actions)) = (r.module, r.page, r.actions) else {
            continue;
        };
        let set: BTreeSet<Action> = actions.iter().filter_map(|a| Action::parse(a)).collect();
        if !set.is_empty() {
            out.modules
                .entry(module)
                .or_default()
                .entry(page)
                .or_default()
                .extend(set);
        }
    }
    Ok(Some(out))
}
