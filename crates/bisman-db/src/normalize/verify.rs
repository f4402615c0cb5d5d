//! Comparing the JSONB columns with the tables.

use serde::Serialize;
use sqlx::{PgPool, Row};

use super::{Kind, NormalizeError};
use crate::lifecycle::Progress;

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The message.
    pub message_id: String,
    /// The user (and emoji, for reactions).
    pub detail: String,
    /// Which side lacks it.
    pub problem: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Which column.
    pub kind: Option<Kind>,
    /// Messages compared.
    pub messages_checked: i64,
    /// Valid JSONB entries with no row.
    pub missing_in_table: i64,
    /// Rows with no valid JSONB entry.
    pub extra_in_table: i64,
    /// Entries in quarantine for this kind.
    pub quarantined: i64,
    /// The first differences (at most `sample` of them).
    pub samples: Vec<Difference>,
}

impl VerifyReport {
    /// Whether JSONB and table agree.
    pub fn is_clean(&self) -> bool {
        self.missing_in_table == 0 && self.extra_in_table == 0
    }
}

/// Compares every message's JSONB with the table, `batch` messages at a time.
#[tracing::instrument(skip(pool, progress))]
pub async fn verify(
    pool: &PgPool,
    kind: Kind,
    batch: i32,
    sample: usize,
    progress: &dyn Progress,
) -> Result<VerifyReport, NormalizeError> {
    if batch < 1 {
        return Err(NormalizeError::Invalid(
            "batch size must be positive".into(),
        ));
    }
    let mut report = VerifyReport {
        kind: Some(kind),
        ..Default::default()
    };
    progress.start(&format!("verifying {kind}"), None);
    let mut after: Option<String> = None;
    loop {
        let rows = sqlx::query("SELECT * FROM bisman_normalize_differences($1, $2, $3)")
            .bind(kind.as_str())
            .bind(&after)
            .bind(batch)
            .fetch_all(pool)
            .await?;
        let mut scanned = 0;
        for r in &rows {
            scanned = r.try_get("messages_scanned")?;
            after = r.try_get("last_message_id")?;
            let Some(problem) = r.try_get::<Option<String>, _>("problem")? else {
                continue;
            };
            if problem.starts_with("in JSONB") {
                report.missing_in_table += 1;
            } else {
                report.extra_in_table += 1;
            }
            if report.samples.len() < sample {
                report.samples.push(Difference {
                    message_id: r.try_get("message_id")?,
                    detail: r.try_get("detail")?,
                    problem,
                });
            }
        }
        if scanned == 0 {
            break;
        }
        report.messages_checked += scanned;
        progress.advance(scanned as u64);
    }
    progress.finish();
    report.quarantined =
        sqlx::query_scalar("SELECT count(*) FROM normalization_quarantine WHERE kind = $1")
            .bind(kind.as_str())
            .fetch_one(pool)
            .await?;
    Ok(report)
}
