//! Roles, their page permissions, user roles, super admins and their modules.

use bisman_cache::{RoleId, SuperAdminId, TenantId, UserId};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;

/// The actions a role grants on one page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// Module key.
    pub module: String,
    /// Page key.
    pub page: String,
    /// Actions (`view`, `create`, `edit`, `delete`, `approve`).
    pub actions: Vec<String>,
}

/// A role with its grants.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Role {
    /// Role id.
    pub id: i32,
    /// Name (unique in the tenant).
    pub name: String,
    /// Description.
    pub description: String,
    /// Page permissions.
    pub permissions: Vec<Grant>,
}

type RoleRow = (i32, String, String, Json<Vec<Grant>>);

const ROLE_SELECT: &str = "
    SELECT r.id, r.name, r.description,
           coalesce(jsonb_agg(jsonb_build_object('module', m.key, 'page', p.key, 'actions', to_jsonb(rp.actions))
                              ORDER BY m.key, p.key) FILTER (WHERE p.id IS NOT NULL), '[]'::jsonb)
    FROM roles r
    LEFT JOIN role_permissions rp ON rp.role_id = r.id
    LEFT JOIN pages p ON p.id = rp.page_id
    LEFT JOIN modules m ON m.id = p.module_id
    WHERE r.tenant_id = $1";

fn to_role(r: RoleRow) -> Role {
    Role {
        id: r.0,
        name: r.1,
        description: r.2,
        permissions: r.3 .0,
    }
}

/// The tenant's roles, by name.
#[tracing::instrument(skip(pool))]
pub async fn list_roles(pool: &PgPool, tenant: TenantId) -> Result<Vec<Role>, sqlx::Error> {
    let rows: Vec<RoleRow> =
        sqlx::query_as(&format!("{ROLE_SELECT} GROUP BY r.id ORDER BY r.name"))
            .bind(tenant.0)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(to_role).collect())
}

/// One role of the tenant.
#[tracing::instrument(skip(tx))]
pub async fn get_role(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    role: RoleId,
) -> Result<Option<Role>, sqlx::Error> {
    let row: Option<RoleRow> =
        sqlx::query_as(&format!("{ROLE_SELECT} AND r.id = $2 GROUP BY r.id"))
            .bind(tenant.0)
            .bind(role.0)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(to_role))
}

/// Locks a role of the tenant against concurrent edits; whether it exists.
pub async fn lock_role(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    role: RoleId,
) -> Result<bool, sqlx::Error> {
    let found: Option<i32> =
        sqlx::query_scalar("SELECT id FROM roles WHERE id = $1 AND tenant_id = $2 FOR UPDATE")
            .bind(role.0)
            .bind(tenant.0)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(found.is_some())
}

/// Creates a role; its id.
#[tracing::instrument(skip(tx))]
pub async fn create_role(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    name: &str,
    description: &str,
) -> Result<RoleId, sqlx::Error> {
    let id: i32 = sqlx::query_scalar(
        "INSERT INTO roles (tenant_id, name, description) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(tenant.0)
    .bind(name)
    .bind(description)
    .fetch_one(&mut **tx)
    .await?;
    Ok(RoleId(id))
}

/// Page ids of `(module, page)` pairs, `None` for pairs not in the catalogue.
pub async fn page_ids(
    tx: &mut Transaction<'_, Postgres>,
    pairs: &[(String, String)],
) -> Result<Vec<Option<i32>>, sqlx::Error> {
    let modules: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
    let pages: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    let rows: Vec<(i32, Option<i32>)> = sqlx::query_as(
        "SELECT q.n::int, p.id
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(module, page, n)
         LEFT JOIN modules m ON m.key = q.module
         LEFT JOIN pages p ON p.module_id = m.id AND p.key = q.page
         ORDER BY q.n",
    )
    .bind(&modules)
    .bind(&pages)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|r| r.1).collect())
}

/// Replaces a role's page permissions.
#[tracing::instrument(skip(tx, grants))]
pub async fn replace_role_permissions(
    tx: &mut Transaction<'_, Postgres>,
    role: RoleId,
    grants: &[(i32, Vec<String>)],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM role_permissions WHERE role_id = $1")
        .bind(role.0)
        .execute(&mut **tx)
        .await?;
    let pages: Vec<i32> = grants.iter().map(|g| g.0).collect();
    // Actions travel comma-joined (PostgreSQL arrays cannot be ragged); the
    // caller validated them against the five action names.
    let actions: Vec<String> = grants.iter().map(|g| g.1.join(",")).collect();
    sqlx::query(
        "INSERT INTO role_permissions (role_id, page_id, actions, updated_at)
         SELECT $1, g.page_id, string_to_array(g.actions, ','), now()
         FROM unnest($2::int[], $3::text[]) AS g(page_id, actions)",
    )
    .bind(role.0)
    .bind(&pages)
    .bind(&actions)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes a role of the tenant; the users who held it, `None` when there
/// is no such role.
#[tracing::instrument(skip(tx))]
pub async fn delete_role(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    role: RoleId,
) -> Result<Option<Vec<UserId>>, sqlx::Error> {
    if !lock_role(tx, tenant, role).await? {
        return Ok(None);
    }
    let users: Vec<i32> = sqlx::query_scalar("SELECT user_id FROM user_roles WHERE role_id = $1")
        .bind(role.0)
        .fetch_all(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM roles WHERE id = $1 AND tenant_id = $2")
        .bind(role.0)
        .bind(tenant.0)
        .execute(&mut **tx)
        .await?;
    Ok(Some(users.into_iter().map(UserId).collect()))
}

/// A user of the tenant as administrators see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// User id.
    pub id: i32,
    /// E-mail.
    pub email: String,
    /// Name.
    pub name: String,
    /// Type.
    pub user_type: String,
    /// Active.
    pub is_active: bool,
    /// Role ids.
    pub roles: Vec<i32>,
}

/// The tenant's users.
#[tracing::instrument(skip(pool))]
pub async fn list_users(pool: &PgPool, tenant: TenantId) -> Result<Vec<UserView>, sqlx::Error> {
    let rows: Vec<(i32, String, String, String, bool, Vec<i32>)> = sqlx::query_as(
        "SELECT u.id, u.email, u.name, u.user_type, u.is_active,
                ARRAY(SELECT ur.role_id FROM user_roles ur JOIN roles r ON r.id = ur.role_id
                      WHERE ur.user_id = u.id AND r.tenant_id = u.tenant_id ORDER BY ur.role_id)
         FROM users u WHERE u.tenant_id = $1 ORDER BY u.id",
    )
    .bind(tenant.0)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| UserView {
            id: r.0,
            email: r.1,
            name: r.2,
            user_type: r.3,
            is_active: r.4,
            roles: r.5,
        })
        .collect())
}

/// Whether `user` belongs to the tenant.
pub async fn user_in_tenant(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    user: UserId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND tenant_id = $2)")
        .bind(user.0)
        .bind(tenant.0)
        .fetch_one(&mut **tx)
        .await
}

/// Gives `user` the role; whether it was new.
pub async fn assign_role(
    tx: &mut Transaction<'_, Postgres>,
    user: UserId,
    role: RoleId,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(user.0)
    .bind(role.0)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Takes the role from `user`; whether they held it.
pub async fn unassign_role(
    tx: &mut Transaction<'_, Postgres>,
    user: UserId,
    role: RoleId,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
        .bind(user.0)
        .bind(role.0)
        .execute(&mut **tx)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Whether `user` is an active platform operator of the tenant.
#[tracing::instrument(skip(pool))]
pub async fn is_platform_operator(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM platform_operators po JOIN users u ON u.id = po.user_id
                        WHERE po.user_id = $1 AND po.tenant_id = $2 AND u.tenant_id = $2 AND u.is_active)",
    )
    .bind(user.0)
    .bind(tenant.0)
    .fetch_one(pool)
    .await
}

/// A super admin with their modules.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SuperAdminView {
    /// `super_admins.id`.
    pub id: i32,
    /// Their user id.
    pub user_id: i32,
    /// Their e-mail.
    pub email: String,
    /// Active.
    pub is_active: bool,
    /// Assigned module keys.
    pub modules: Vec<String>,
}

/// The tenant's super admins.
#[tracing::instrument(skip(pool))]
pub async fn list_super_admins(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Vec<SuperAdminView>, sqlx::Error> {
    let rows: Vec<(i32, i32, String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT s.id, s.user_id, u.email, s.is_active,
                ARRAY(SELECT m.key FROM super_admin_modules sam JOIN modules m ON m.id = sam.module_id
                      WHERE sam.super_admin_id = s.id ORDER BY m.key)
         FROM super_admins s JOIN users u ON u.id = s.user_id
         WHERE s.tenant_id = $1 ORDER BY s.id",
    )
    .bind(tenant.0)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SuperAdminView {
            id: r.0,
            user_id: r.1,
            email: r.2,
            is_active: r.3,
            modules: r.4,
        })
        .collect())
}

/// Locks a super admin of the tenant. `Some(bounds_actor)` when found:
/// whether `actor` is that super admin or one of the users it bounds.
pub async fn lock_super_admin(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    sa: SuperAdminId,
    actor: UserId,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT s.user_id = $3 OR EXISTS (SELECT 1 FROM users u WHERE u.id = $3 AND u.super_admin_id = s.id)
         FROM super_admins s WHERE s.id = $1 AND s.tenant_id = $2 FOR UPDATE OF s",
    )
    .bind(sa.0)
    .bind(tenant.0)
    .bind(actor.0)
    .fetch_optional(&mut **tx)
    .await
}

/// The id of the module called `key`.
pub async fn module_id(
    tx: &mut Transaction<'_, Postgres>,
    key: &str,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM modules WHERE key = $1")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
}

/// Assigns a module; whether it was new.
pub async fn assign_module(
    tx: &mut Transaction<'_, Postgres>,
    sa: SuperAdminId,
    module: i32,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "INSERT INTO super_admin_modules (super_admin_id, module_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(sa.0)
    .bind(module)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Unassigns a module; whether it was assigned.
pub async fn unassign_module(
    tx: &mut Transaction<'_, Postgres>,
    sa: SuperAdminId,
    module: i32,
) -> Result<bool, sqlx::Error> {
    let r =
        sqlx::query("DELETE FROM super_admin_modules WHERE super_admin_id = $1 AND module_id = $2")
            .bind(sa.0)
            .bind(module)
            .execute(&mut **tx)
            .await?;
    Ok(r.rows_affected() == 1)
}

/// Deactivates a super admin; whether it was active.
pub async fn deactivate_super_admin(
    tx: &mut Transaction<'_, Postgres>,
    sa: SuperAdminId,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query(
        "UPDATE super_admins SET is_active = false, deactivated_at = now() WHERE id = $1 AND is_active",
    )
    .bind(sa.0)
    .execute(&mut **tx)
    .await?;
    Ok(r.rows_affected() == 1)
}
