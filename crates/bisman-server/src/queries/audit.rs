//! The audit log: one row per administrative change, written in the
//! change's own transaction (no change without its record).

use bisman_cache::{TenantId, UserId};
use sqlx::{Postgres, Transaction};

/// One audit entry.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// The tenant.
    pub tenant: TenantId,
    /// Who did it.
    pub actor: UserId,
    /// What (`role.permissions.replace`, …).
    pub action: &'a str,
    /// On what kind of object (`role`, `user`, `super_admin`).
    pub entity_type: &'a str,
    /// Which one.
    pub entity_id: String,
    /// Before/after and parameters.
    pub details: serde_json::Value,
    /// Client address.
    pub ip: &'a str,
}

/// Records `entry` in `audit_logs`.
#[tracing::instrument(skip_all, fields(action = entry.action))]
pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    entry: &AuditEntry<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_logs (tenant_id, actor_user_id, action, entity_type, entity_id, details, ip_address)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(entry.tenant.0)
    .bind(entry.actor.0)
    .bind(entry.action)
    .bind(entry.entity_type)
    .bind(&entry.entity_id)
    .bind(&entry.details)
    .bind(entry.ip)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
