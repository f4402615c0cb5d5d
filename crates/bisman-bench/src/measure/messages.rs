//! Message queries: a thread's newest 50 messages (the page a client opens)
//! and a thread's messages in one week, on the pre-P3 flat table (no index
//! on the thread), the flat table with the P3 index, and the partitioned
//! table. The plan of each says how many partitions it touched.

use super::query::{compare, Answer, ReadQuery};
use super::workload::Pair;
use super::{Layer, Measurement, Operation};
use crate::data::Dataset;
use crate::error::Result;
use crate::explain::Bind;
use crate::options::Effort;
use crate::Progress;

fn newest(table: &str) -> String {
    format!(
        r#"SELECT id, "senderId", content, "createdAt" FROM {table}
           WHERE "threadId" = $1 AND "isDeleted" = false
           ORDER BY "createdAt" DESC LIMIT 50"#
    )
}

fn range(table: &str) -> String {
    format!(
        r#"SELECT id, "senderId", content, "createdAt" FROM {table}
           WHERE "threadId" = $1 AND "createdAt" >= $2 AND "createdAt" < $3 AND "isDeleted" = false
           ORDER BY "createdAt""#
    )
}

fn thread(p: &Pair) -> Vec<Bind> {
    vec![Bind::Text(p.thread_id.clone())]
}

fn thread_week(p: &Pair) -> Vec<Bind> {
    vec![
        Bind::Text(p.thread_id.clone()),
        Bind::Ts(p.from),
        Bind::Ts(p.to),
    ]
}

/// Both queries on the three layers.
pub async fn measure(
    before: &Dataset,
    after: &Dataset,
    pairs: &[Pair],
    effort: &Effort,
    progress: &dyn Progress,
) -> Result<Vec<Measurement>> {
    let mut out = Vec::new();
    for (operation, sql, binds) in [
        (
            Operation::NewestMessages,
            newest as fn(&str) -> String,
            thread as fn(&Pair) -> Vec<Bind>,
        ),
        (Operation::DateRange, range, thread_week),
    ] {
        let layers = [
            (Layer::FlatNoIndex, &before.pool, "thread_messages"),
            (Layer::FlatP3Index, &after.pool, "thread_messages"),
            (
                Layer::Partitioned,
                &after.pool,
                "thread_messages_partitioned",
            ),
        ];
        let queries = layers
            .into_iter()
            .map(|(layer, pool, table)| ReadQuery {
                operation,
                layer,
                pool,
                sql: sql(table),
                binds,
                answer: Answer::Rows,
            })
            .collect();
        out.extend(compare(queries, pairs, effort, progress).await?);
    }
    Ok(out)
}
