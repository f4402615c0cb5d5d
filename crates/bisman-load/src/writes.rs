//! Acknowledged writes, and their lookup in PostgreSQL afterwards: an
//! acknowledged post, reaction or read receipt that is not there was lost.

use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::PgPool;

use crate::LoadError;

/// The writes the service acknowledged (2xx) during a run.
#[derive(Debug, Clone, Default)]
pub struct Acknowledged {
    /// Message ids of acknowledged posts.
    pub posts: BTreeSet<String>,
    /// (message id, user e-mail, emoji) of acknowledged reactions.
    pub reactions: BTreeSet<(String, String, String)>,
    /// (message id, user e-mail) of acknowledged read receipts.
    pub reads: BTreeSet<(String, String)>,
}

/// Acknowledged writes found in PostgreSQL, by kind.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct WritesCheck {
    /// Posts acknowledged.
    pub posts_acknowledged: u64,
    /// Of those, rows found in `thread_messages`.
    pub posts_found: u64,
    /// Reactions acknowledged.
    pub reactions_acknowledged: u64,
    /// Of those, rows found in `message_reactions`.
    pub reactions_found: u64,
    /// Read receipts acknowledged.
    pub reads_acknowledged: u64,
    /// Of those, rows found in `message_reads`.
    pub reads_found: u64,
}

impl WritesCheck {
    /// Acknowledged writes that are not in the database.
    pub fn lost(&self) -> u64 {
        self.posts_acknowledged.saturating_sub(self.posts_found)
            + self
                .reactions_acknowledged
                .saturating_sub(self.reactions_found)
            + self.reads_acknowledged.saturating_sub(self.reads_found)
    }
}

/// Looks every acknowledged write up in the tenant `tenant`.
pub async fn verify_writes(
    pool: &PgPool,
    tenant: &str,
    acked: &Acknowledged,
) -> Result<WritesCheck, LoadError> {
    let posts: Vec<&String> = acked.posts.iter().collect();
    let posts_found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM thread_messages m JOIN tenants t ON t.id = m.tenant_id
         WHERE t.slug = $1 AND m.id = ANY($2)",
    )
    .bind(tenant)
    .bind(&posts)
    .fetch_one(pool)
    .await?;
    let (rm, re, rj): (Vec<&str>, Vec<&str>, Vec<&str>) = acked
        .reactions
        .iter()
        .map(|(m, e, j)| (m.as_str(), e.as_str(), j.as_str()))
        .fold(Default::default(), |mut acc, (m, e, j)| {
            acc.0.push(m);
            acc.1.push(e);
            acc.2.push(j);
            acc
        });
    let reactions_found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM unnest($2::text[], $3::text[], $4::text[]) AS a(message_id, email, emoji)
         WHERE EXISTS (SELECT 1 FROM message_reactions r JOIN users u ON u.id = r.user_id
                       JOIN tenants t ON t.id = u.tenant_id
                       WHERE t.slug = $1 AND r.message_id = a.message_id AND u.email = a.email
                         AND r.emoji = a.emoji)",
    )
    .bind(tenant)
    .bind(&rm)
    .bind(&re)
    .bind(&rj)
    .fetch_one(pool)
    .await?;
    let (dm, de): (Vec<&str>, Vec<&str>) = acked
        .reads
        .iter()
        .map(|(m, e)| (m.as_str(), e.as_str()))
        .unzip();
    let reads_found: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM unnest($2::text[], $3::text[]) AS a(message_id, email)
         WHERE EXISTS (SELECT 1 FROM message_reads r JOIN users u ON u.id = r.user_id
                       JOIN tenants t ON t.id = u.tenant_id
                       WHERE t.slug = $1 AND r.message_id = a.message_id AND u.email = a.email)",
    )
    .bind(tenant)
    .bind(&dm)
    .bind(&de)
    .fetch_one(pool)
    .await?;
    Ok(WritesCheck {
        posts_acknowledged: acked.posts.len() as u64,
        posts_found: posts_found as u64,
        reactions_acknowledged: acked.reactions.len() as u64,
        reactions_found: reactions_found as u64,
        reads_acknowledged: acked.reads.len() as u64,
        reads_found: reads_found as u64,
    })
}
