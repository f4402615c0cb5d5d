//! What a query's plan touches, read from `EXPLAIN (ANALYZE, FORMAT JSON)`:
//! the partitions scanned per partitioned table, and how.

use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::Serialize;
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{PgPool, Postgres};

use crate::error::Result;

/// A query parameter.
#[derive(Debug, Clone)]
pub enum Bind {
    /// Text.
    Text(String),
    /// A 32-bit integer.
    Int(i32),
    /// A naive (UTC) timestamp.
    Ts(NaiveDateTime),
}

/// Binds `binds` to `q` in order.
pub fn bind_all<'q>(
    mut q: Query<'q, Postgres, PgArguments>,
    binds: &'q [Bind],
) -> Query<'q, Postgres, PgArguments> {
    for b in binds {
        q = match b {
            Bind::Text(s) => q.bind(s.as_str()),
            Bind::Int(i) => q.bind(*i),
            Bind::Ts(t) => q.bind(*t),
        };
    }
    q
}

/// How a plan touched one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableTouch {
    /// The table as the query names it (the partitioned parent, or a flat table).
    pub table: String,
    /// Partitions (or, for a flat table, the table) scanned at least once.
    pub touched: usize,
    /// Partitions in the plan (after plan-time pruning).
    pub planned: usize,
    /// Partitions the table has (1 for a flat table).
    pub total: usize,
}

/// The plan of one representative call.
#[derive(Debug, Clone, Serialize)]
pub struct PlanInfo {
    /// Per table.
    pub tables: Vec<TableTouch>,
    /// Distinct scan kinds, like `Index Scan using idx on thread_messages`.
    pub scans: Vec<String>,
    /// Execution time PostgreSQL reported for that call, ms.
    pub execution_ms: f64,
    /// Planning time PostgreSQL reported for that call, ms (it grows with
    /// the number of partitions a plan considers).
    pub planning_ms: f64,
    /// The whole plan.
    pub plan: Value,
}

impl PlanInfo {
    /// `thread_messages_partitioned: 2 of 17 partitions; planned in 0.8 ms,
    /// ran in 0.3 ms`, or `thread_messages (flat); …`.
    pub fn summary(&self) -> String {
        let tables = self
            .tables
            .iter()
            .map(|t| {
                if t.total <= 1 && t.touched <= 1 {
                    format!("{} (flat)", t.table)
                } else {
                    format!("{}: {} of {} partitions", t.table, t.touched, t.total)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "{tables}; EXPLAIN ANALYZE: planned in {:.2} ms, ran in {:.2} ms",
            self.planning_ms, self.execution_ms
        )
    }

    /// Partitions touched of `table`, if the plan scanned it.
    pub fn touched(&self, table: &str) -> Option<usize> {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map(|t| t.touched)
    }
}

#[derive(Debug, Default)]
struct Scan {
    relation: String,
    executed: bool,
    kind: String,
}

fn walk(node: &Value, out: &mut Vec<Scan>) {
    if let Some(rel) = node.get("Relation Name").and_then(Value::as_str) {
        let node_type = node
            .get("Node Type")
            .and_then(Value::as_str)
            .unwrap_or("Scan");
        let kind = match node.get("Index Name").and_then(Value::as_str) {
            Some(ix) => format!("{node_type} using {ix}"),
            None => node_type.to_string(),
        };
        out.push(Scan {
            relation: rel.to_string(),
            executed: node
                .get("Actual Loops")
                .and_then(Value::as_f64)
                .is_none_or(|l| l > 0.0),
            kind,
        });
    }
    if let Some(children) = node.get("Plans").and_then(Value::as_array) {
        for c in children {
            walk(c, out);
        }
    }
}

/// The scans of an `EXPLAIN (FORMAT JSON)` document, with its execution
/// and planning times.
fn scans(doc: &Value) -> (Vec<Scan>, f64, f64) {
    let root = doc.get(0).unwrap_or(doc);
    let mut out = Vec::new();
    if let Some(plan) = root.get("Plan") {
        walk(plan, &mut out);
    }
    let ms = |key: &str| root.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN);
    (out, ms("Execution Time"), ms("Planning Time"))
}

/// Runs `EXPLAIN (ANALYZE, FORMAT JSON)` of `sql` with `binds` (a read-only
/// query: it is executed) and reads what it touched.
pub async fn explain(pool: &PgPool, sql: &str, binds: &[Bind]) -> Result<PlanInfo> {
    let text = format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}");
    let doc: Value = bind_all(sqlx::query(&text), binds)
        .fetch_one(pool)
        .await
        .and_then(|row| sqlx::Row::try_get(&row, 0))?;
    let (found, execution_ms, planning_ms) = scans(&doc);
    let names: Vec<String> = found.iter().map(|s| s.relation.clone()).collect();
    // Each scanned relation's partitioned parent and its number of partitions.
    let parents: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT c.relname::text, p.relname::text,
                (SELECT count(*) FROM pg_inherits i2 WHERE i2.inhparent = p.oid)
         FROM pg_class c
         JOIN pg_inherits i ON i.inhrelid = c.oid
         JOIN pg_class p ON p.oid = i.inhparent
         WHERE c.relname = ANY($1)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    let mut tables: BTreeMap<String, TableTouch> = BTreeMap::new();
    let mut kinds: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, (bool, bool)> = BTreeMap::new();
    for s in &found {
        let (table, total) = parents
            .iter()
            .find(|p| p.0 == s.relation)
            .map(|p| (p.1.clone(), p.2 as usize))
            .unwrap_or_else(|| (s.relation.clone(), 1));
        let kind = format!("{} on {table}", s.kind.replace(&s.relation, &table));
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
        let entry = seen.entry(s.relation.clone()).or_default();
        let first_plan = !entry.0;
        let first_exec = s.executed && !entry.1;
        entry.0 = true;
        entry.1 |= s.executed;
        let t = tables.entry(table.clone()).or_insert(TableTouch {
            table,
            touched: 0,
            planned: 0,
            total,
        });
        t.planned += usize::from(first_plan);
        t.touched += usize::from(first_exec);
    }
    Ok(PlanInfo {
        tables: tables.into_values().collect(),
        scans: kinds,
        execution_ms,
        planning_ms,
        plan: doc,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_scans_and_skips_the_never_executed() {
        let doc = serde_json::json!([{
            "Plan": {"Node Type": "Limit", "Plans": [{
                "Node Type": "Merge Append", "Plans": [
                    {"Node Type": "Index Scan", "Relation Name": "t_p2025_01", "Index Name": "ix1", "Actual Loops": 1},
                    {"Node Type": "Index Scan", "Relation Name": "t_p2025_02", "Index Name": "ix2", "Actual Loops": 0},
                    {"Node Type": "Seq Scan", "Relation Name": "t_default", "Actual Loops": 1}
                ]}]},
            "Execution Time": 0.25,
            "Planning Time": 1.5
        }]);
        let (found, ms, planning) = scans(&doc);
        assert_eq!((ms, planning), (0.25, 1.5));
        assert_eq!(found.len(), 3);
        assert_eq!(found.iter().filter(|s| s.executed).count(), 2);
        assert_eq!(found[0].kind, "Index Scan using ix1");
        assert_eq!(found[2].kind, "Seq Scan");
    }
}
