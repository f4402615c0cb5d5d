//! Expense approvals: the approver's queue and decisions.

use bisman_cache::{TenantId, UserId};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;

/// A pending approval with its expense.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct PendingApproval {
    /// Approval id.
    pub id: i32,
    /// Expense id.
    pub expense_id: i32,
    /// Approval level.
    pub level: i32,
    /// Amount, as a decimal string.
    pub amount: String,
    /// Currency.
    pub currency: String,
    /// Description.
    pub description: String,
    /// Who submitted it.
    pub submitted_by: i32,
    /// When the approval was requested.
    pub created_at: DateTime<Utc>,
}

/// The approver's pending approvals, oldest first.
#[tracing::instrument(skip(pool))]
pub async fn pending(
    pool: &PgPool,
    tenant: TenantId,
    approver: UserId,
    limit: i64,
) -> Result<Vec<PendingApproval>, sqlx::Error> {
    sqlx::query_as(
        "SELECT a.id, a.expense_id, a.level, e.amount::text AS amount, e.currency, e.description,
                e.submitted_by, a.created_at
         FROM approvals a JOIN expenses e ON e.id = a.expense_id AND e.tenant_id = a.tenant_id
         WHERE a.tenant_id = $1 AND a.approver_id = $2 AND a.status = 'PENDING'
         ORDER BY a.created_at, a.id LIMIT $3",
    )
    .bind(tenant.0)
    .bind(approver.0)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Locks an approval of the approver; `(expense id, status)`.
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    approver: UserId,
    approval: i32,
) -> Result<Option<(i32, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT expense_id, status FROM approvals
         WHERE id = $1 AND tenant_id = $2 AND approver_id = $3 FOR UPDATE",
    )
    .bind(approval)
    .bind(tenant.0)
    .bind(approver.0)
    .fetch_optional(&mut **tx)
    .await
}

/// Records the decision and settles the expense: rejected at once by any
/// rejection, approved when no approval is left pending. Returns the
/// expense's status.
#[tracing::instrument(skip(tx, comment))]
pub async fn decide(
    tx: &mut Transaction<'_, Postgres>,
    tenant: TenantId,
    approval: i32,
    expense: i32,
    approve: bool,
    comment: Option<&str>,
) -> Result<String, sqlx::Error> {
    let status = if approve { "APPROVED" } else { "REJECTED" };
    sqlx::query(
        "UPDATE approvals SET status = $3, comment = $4, decided_at = now() WHERE id = $1 AND tenant_id = $2",
    )
    .bind(approval)
    .bind(tenant.0)
    .bind(status)
    .bind(comment)
    .execute(&mut **tx)
    .await?;
    sqlx::query_scalar(
        "UPDATE expenses e SET status = CASE
             WHEN EXISTS (SELECT 1 FROM approvals a WHERE a.expense_id = e.id AND a.status = 'REJECTED') THEN 'REJECTED'
             WHEN NOT EXISTS (SELECT 1 FROM approvals a WHERE a.expense_id = e.id AND a.status = 'PENDING') THEN 'APPROVED'
             ELSE 'PENDING' END
         WHERE e.id = $1 AND e.tenant_id = $2 RETURNING e.status",
    )
    .bind(expense)
    .bind(tenant.0)
    .fetch_one(&mut **tx)
    .await
}
