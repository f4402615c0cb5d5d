//! Accounts: the login lookup and password changes.

use bisman_cache::{TenantId, UserId, UserType};
use sqlx::{PgPool, Postgres, Transaction};

/// What login needs to know about an account.
#[derive(Debug, Clone)]
pub struct LoginAccount {
    /// The user.
    pub user_id: UserId,
    /// Their tenant.
    pub tenant_id: TenantId,
    /// Their type.
    pub user_type: UserType,
    /// Their e-mail as stored.
    pub email: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// User and tenant both active.
    pub active: bool,
}

type LoginRow = (i32, uuid::Uuid, String, String, String, bool);

/// The account `email` (case-insensitive) of the tenant called `tenant_slug`.
#[tracing::instrument(skip(pool, email))]
pub async fn find_for_login(
    pool: &PgPool,
    tenant_slug: &str,
    email: &str,
) -> anyhow::Result<Option<LoginAccount>> {
    let row: Option<LoginRow> = sqlx::query_as(
        "SELECT u.id, u.tenant_id, u.user_type, u.email, u.password_hash, u.is_active AND t.is_active
         FROM users u JOIN tenants t ON t.id = u.tenant_id
         WHERE t.slug = $1 AND lower(u.email) = lower($2)",
    )
    .bind(tenant_slug)
    .bind(email)
    .fetch_optional(pool)
    .await?;
    let Some((id, tenant, user_type, email, password_hash, active)) = row else {
        return Ok(None);
    };
    Ok(Some(LoginAccount {
        user_id: UserId(id),
        tenant_id: TenantId(tenant),
        user_type: user_type.parse()?,
        email,
        password_hash,
        active,
    }))
}

/// The password hash of a user of `tenant`.
#[tracing::instrument(skip(pool))]
pub async fn password_hash(
    pool: &PgPool,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1 AND tenant_id = $2")
        .bind(user.0)
        .bind(tenant.0)
        .fetch_optional(pool)
        .await
}

/// Stores a new password hash.
#[tracing::instrument(skip(tx, hash))]
pub async fn set_password_hash(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    user: UserId,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE users SET password_hash = $3, password_changed_at = now() WHERE id = $1 AND tenant_id = $2",
    )
    .bind(user.0)
    .bind(tenant.0)
    .bind(hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
