//! One read query measured on one layer: sampled over the workload's
//! pairs, its plan read once, and its answers for the first pairs kept so
//! that the layers can be checked to agree.

use sqlx::{PgPool, Row};

use super::workload::Pair;
use super::{Layer, Measurement, Operation, Sampler};
use crate::error::Result;
use crate::explain::{bind_all, explain, Bind};
use crate::options::Effort;
use crate::Progress;

/// Pairs whose answers are compared across layers.
const CHECKED: usize = 5;

/// What a query returns, for comparing layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Rows: compare their number.
    Rows,
    /// One `bigint`: compare it.
    Count,
}

/// A read query on one layer.
pub struct ReadQuery<'a> {
    /// What it answers.
    pub operation: Operation,
    /// Where.
    pub layer: Layer,
    /// The database.
    pub pool: &'a PgPool,
    /// The SQL.
    pub sql: String,
    /// Its parameters for a pair.
    pub binds: fn(&Pair) -> Vec<Bind>,
    /// What it returns.
    pub answer: Answer,
}

/// A measured query and its answers for the first pairs.
pub struct Measured {
    /// The row.
    pub measurement: Measurement,
    /// Answers for the first pairs.
    pub answers: Vec<i64>,
}

async fn answer(q: &ReadQuery<'_>, binds: &[Bind]) -> Result<i64> {
    let query = bind_all(sqlx::query(&q.sql), binds);
    Ok(match q.answer {
        Answer::Rows => query.fetch_all(q.pool).await?.len() as i64,
        Answer::Count => query.fetch_one(q.pool).await?.try_get::<i64, _>(0)?,
    })
}

impl ReadQuery<'_> {
    /// Samples the query over `pairs` and reads its plan for the first one.
    pub async fn measure(
        &self,
        pairs: &[Pair],
        effort: &Effort,
        progress: &dyn Progress,
    ) -> Result<Measured> {
        let binds: Vec<Vec<Bind>> = pairs.iter().map(self.binds).collect();
        let mut answers = Vec::new();
        for b in binds.iter().take(CHECKED) {
            answers.push(answer(self, b).await?);
        }
        let label = format!("{}, {}", self.operation.label(), self.layer.label());
        let samples = Sampler::query(effort)
            .run(&label, progress, |i| {
                let b = &binds[i % binds.len()];
                async move {
                    answer(self, b).await?;
                    Ok(())
                }
            })
            .await?;
        let plan = explain(self.pool, &self.sql, &binds[0]).await?;
        Ok(Measured {
            measurement: Measurement::measured(self.operation, self.layer, samples)
                .with_note(plan.summary())
                .with_plan(Some(plan)),
            answers,
        })
    }
}

/// Measures every layer of one operation and notes whether they agree.
pub async fn compare(
    queries: Vec<ReadQuery<'_>>,
    pairs: &[Pair],
    effort: &Effort,
    progress: &dyn Progress,
) -> Result<Vec<Measurement>> {
    let mut out: Vec<Measured> = Vec::new();
    for q in &queries {
        out.push(q.measure(pairs, effort, progress).await?);
    }
    let reference = out.first().map(|m| m.answers.clone()).unwrap_or_default();
    Ok(out
        .into_iter()
        .enumerate()
        .map(|(k, m)| {
            if k == 0 {
                return m.measurement;
            }
            let agree = m
                .answers
                .iter()
                .zip(&reference)
                .filter(|(a, b)| a == b)
                .count();
            m.measurement.with_note(format!(
                "answers agree with the first layer on {agree} of {} pairs",
                reference.len()
            ))
        })
        .collect())
}
