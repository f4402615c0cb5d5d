//! The swap and the unswap: one short transaction each, under
//! `lock_timeout`, retried.
//!
//! Inside the lock: the last logged changes are replayed and checked (see
//! [`super::sync::verify_locked`]); foreign keys pointing in and the live
//! table's own triggers are taken off; the tables are renamed; indexes are
//! renamed so the live table carries the names it had (the spec's
//! `idx_thread_messages_…`); sequences are handed over (`OWNED BY`) and
//! grants copied; foreign keys are added back pointing at the new live
//! table, triggers re-created on it; the change log is set up the other way
//! and the registry's `parent_table` follows, so the SQL functions keep
//! working.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::{Acquire, PgConnection, PgPool, Row};

use super::shape::{drop_log_triggers, install_log_triggers, Shape};
use super::sync;
use crate::lifecycle::ident::{quote, quote_list};
use crate::lifecycle::{steps, LifecycleError, LockPolicy};

/// What a swap (or unswap) did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SwapReport {
    /// Rows in the live table after it.
    pub rows: i64,
    /// Logged changes replayed under the lock.
    pub changes_replayed_under_lock: i64,
    /// How long the exclusive lock on the tables was held, in milliseconds.
    pub lock_held_ms: f64,
    /// How long taking the lock took.
    pub lock_wait_ms: f64,
    /// Indexes renamed, `from -> to`.
    pub indexes_renamed: Vec<String>,
    /// Foreign keys re-pointed at the new live table.
    pub foreign_keys_repointed: Vec<String>,
    /// Foreign keys that could not be (no unique index on their columns):
    /// they still reference the other table.
    pub foreign_keys_left: Vec<String>,
    /// Sequences handed over.
    pub sequences: Vec<String>,
    /// Triggers moved to the new live table.
    pub triggers_moved: Vec<String>,
}

/// One index renamed by the swap, recorded for the unswap.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexRename {
    /// Its name on the flat table before the swap.
    old: String,
    /// The flat table's index name after the swap.
    retired: String,
    /// The twin's index that took `old`, with its own former name.
    twin: Option<String>,
}

/// A foreign key pointing into the table.
#[derive(Debug, Clone)]
pub(super) struct ForeignKey {
    pub name: String,
    pub child: String,
    child_cols: Vec<String>,
    ref_cols: Vec<String>,
    tail: String,
}

/// Foreign keys (top-level ones, not their per-partition clones) into `table`.
pub(super) async fn foreign_keys_into(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<ForeignKey>, LifecycleError> {
    let rows = sqlx::query(
        "SELECT c.conname::text AS name, ch.relname::text AS child,
                ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, o)
                      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.o) AS child_cols,
                ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, o)
                      JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.o) AS ref_cols,
                substring(pg_get_constraintdef(c.oid) FROM '\\)(( MATCH| ON| DEFERRABLE| NOT DEFERRABLE| INITIALLY).*)$') AS tail
         FROM pg_constraint c JOIN pg_class ch ON ch.oid = c.conrelid
         WHERE c.contype = 'f' AND c.confrelid = to_regclass(quote_ident($1)) AND c.conparentid = 0
         ORDER BY 2, 1",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ForeignKey {
                name: r.try_get("name")?,
                child: r.try_get("child")?,
                child_cols: r.try_get("child_cols")?,
                ref_cols: r.try_get("ref_cols")?,
                tail: r.try_get::<Option<String>, _>("tail")?.unwrap_or_default(),
            })
        })
        .collect()
}

/// Whether `table` has a plain unique index on exactly `cols`.
async fn can_reference(
    conn: &mut PgConnection,
    table: &str,
    cols: &[String],
) -> Result<bool, LifecycleError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM pg_index i
             WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisunique AND i.indpred IS NULL
               AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($2::text[])
               AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a
                    WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey))
                   = (SELECT array_agg(x ORDER BY x) FROM unnest($2::text[]) x))",
    )
    .bind(table)
    .bind(cols)
    .fetch_one(conn)
    .await?)
}

struct Index {
    name: String,
    primary: bool,
    tail: String,
}

async fn indexes(conn: &mut PgConnection, table: &str) -> Result<Vec<Index>, LifecycleError> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, i.indisprimary AS primary,
                substring(pg_get_indexdef(i.indexrelid) FROM position(' USING ' IN pg_get_indexdef(i.indexrelid))) AS tail
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = to_regclass(quote_ident($1)) ORDER BY i.indisprimary DESC, c.relname",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Index {
                name: r.try_get("name")?,
                primary: r.try_get("primary")?,
                tail: r.try_get("tail")?,
            })
        })
        .collect()
}

/// The flat table's indexes matched to the twin's: primary key to primary
/// key, others by definition.
fn plan_index_renames(old: &[Index], twin: &[Index]) -> Vec<IndexRename> {
    let mut taken = vec![false; twin.len()];
    old.iter()
        .map(|o| {
            let found = twin.iter().enumerate().position(|(i, t)| {
                !taken[i]
                    && (if o.primary {
                        t.primary
                    } else {
                        !t.primary && t.tail == o.tail
                    })
            });
            if let Some(i) = found {
                taken[i] = true;
            }
            IndexRename {
                old: o.name.clone(),
                retired: format!("{}_retired", o.name.chars().take(55).collect::<String>()),
                twin: found.map(|i| twin[i].name.clone()),
            }
        })
        .collect()
}

async fn rename_index(conn: &mut PgConnection, from: &str, to: &str) -> Result<(), LifecycleError> {
    sqlx::query(&format!(
        "ALTER INDEX {} RENAME TO {}",
        quote(from),
        quote(to)
    ))
    .execute(conn)
    .await?;
    Ok(())
}

async fn rename_table(conn: &mut PgConnection, from: &str, to: &str) -> Result<(), LifecycleError> {
    sqlx::query(&format!(
        "ALTER TABLE {} RENAME TO {}",
        quote(from),
        quote(to)
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// User triggers of `table` (not the change log's), as `(name, definition)`.
async fn user_triggers(
    conn: &mut PgConnection,
    table: &str,
) -> Result<Vec<(String, String)>, LifecycleError> {
    Ok(sqlx::query_as(
        "SELECT tgname::text, pg_get_triggerdef(oid) FROM pg_trigger
         WHERE tgrelid = to_regclass(quote_ident($1)) AND NOT tgisinternal AND tgparentid = 0
           AND tgname NOT IN ('bisman_migrate_log', 'bisman_migrate_no_truncate')
         ORDER BY 1",
    )
    .bind(table)
    .fetch_all(conn)
    .await?)
}

/// Takes `table`'s triggers and foreign keys pointing in off it, before the renames.
struct Detached {
    triggers: Vec<(String, String)>,
    repoint: Vec<ForeignKey>,
    left: Vec<ForeignKey>,
}

async fn detach_dependents(
    conn: &mut PgConnection,
    live: &str,
    next_live: &str,
) -> Result<Detached, LifecycleError> {
    let mut out = Detached {
        triggers: user_triggers(conn, live).await?,
        repoint: Vec::new(),
        left: Vec::new(),
    };
    for fk in foreign_keys_into(conn, live).await? {
        if can_reference(conn, next_live, &fk.ref_cols).await? {
            sqlx::query(&format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                quote(&fk.child),
                quote(&fk.name)
            ))
            .execute(&mut *conn)
            .await?;
            out.repoint.push(fk);
        } else {
            out.left.push(fk);
        }
    }
    for (name, _) in &out.triggers {
        sqlx::query(&format!("DROP TRIGGER {} ON {}", quote(name), quote(live)))
            .execute(&mut *conn)
            .await?;
    }
    drop_log_triggers(conn, live).await?;
    Ok(out)
}

/// Puts them back on whatever `base` names now.
async fn attach_dependents(
    conn: &mut PgConnection,
    shape: &Shape,
    d: &Detached,
    report: &mut SwapReport,
) -> Result<(), LifecycleError> {
    for fk in &d.repoint {
        sqlx::query(&format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}){}",
            quote(&fk.child),
            quote(&fk.name),
            quote_list(&fk.child_cols),
            quote(&shape.base),
            quote_list(&fk.ref_cols),
            fk.tail
        ))
        .execute(&mut *conn)
        .await?;
        report
            .foreign_keys_repointed
            .push(format!("{}.{}", fk.child, fk.name));
    }
    report.foreign_keys_left = d
        .left
        .iter()
        .map(|fk| format!("{}.{}", fk.child, fk.name))
        .collect();
    // pg_get_triggerdef names the table; after the renames that name is the new live table.
    for (name, def) in &d.triggers {
        sqlx::query(def).execute(&mut *conn).await?;
        report.triggers_moved.push(name.clone());
    }
    install_log_triggers(conn, &shape.base, &shape.key).await?;
    Ok(())
}

/// Sequences owned by `from`'s columns, now owned by the same columns of `to`.
async fn hand_over_sequences(
    conn: &mut PgConnection,
    from: &str,
    to: &str,
    report: &mut SwapReport,
) -> Result<(), LifecycleError> {
    let owned: Vec<(String, String)> = sqlx::query_as(
        "SELECT s.relname::text, a.attname::text FROM pg_depend d
         JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
         JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.refobjid = to_regclass(quote_ident($1)) AND d.deptype = 'a'",
    )
    .bind(from)
    .fetch_all(&mut *conn)
    .await?;
    for (seq, col) in owned {
        sqlx::query(&format!(
            "ALTER SEQUENCE {} OWNED BY {}.{}",
            quote(&seq),
            quote(to),
            quote(&col)
        ))
        .execute(&mut *conn)
        .await?;
        report.sequences.push(seq);
    }
    Ok(())
}

/// Grants on `from` given on `to` as well (the owner's own are implicit).
async fn copy_grants(conn: &mut PgConnection, from: &str, to: &str) -> Result<(), LifecycleError> {
    let grants: Vec<(Option<String>, String)> = sqlx::query_as(
        "SELECT r.rolname::text, a.privilege_type FROM pg_class c
         CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
         WHERE c.oid = to_regclass(quote_ident($1)) AND a.grantee <> c.relowner",
    )
    .bind(from)
    .fetch_all(&mut *conn)
    .await?;
    const PRIVILEGES: &[&str] = &[
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
    ];
    for (role, privilege) in grants {
        if !PRIVILEGES.contains(&privilege.as_str()) {
            continue;
        }
        let who = role.map_or_else(|| "PUBLIC".to_string(), |r| quote(&r));
        sqlx::query(&format!("GRANT {privilege} ON {} TO {who}", quote(to)))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Locks both tables under the policy's timeout; returns when it got them.
async fn lock_both(
    conn: &mut PgConnection,
    a: &str,
    b: &str,
    locks: LockPolicy,
) -> Result<Instant, LifecycleError> {
    locks.apply(conn).await?;
    for t in [a, b] {
        sqlx::query(&format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", quote(t)))
            .execute(&mut *conn)
            .await?;
    }
    Ok(Instant::now())
}

/// The flat table out, the partitioned twin in.
pub(super) async fn swap(
    pool: &PgPool,
    shape: &Shape,
    locks: LockPolicy,
) -> Result<SwapReport, LifecycleError> {
    locks
        .retry(&format!("swapping {}", shape.base), || async {
            let mut report = SwapReport::default();
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let asked = Instant::now();
            let locked = lock_both(&mut tx, &shape.base, &shape.twin, locks).await?;
            report.lock_wait_ms = (locked - asked).as_secs_f64() * 1e3;
            steps::reach(&mut tx, steps::SWAP_LOCKED).await?;
            (report.rows, report.changes_replayed_under_lock) =
                sync::verify_locked(&mut tx, shape).await?;
            let detached = detach_dependents(&mut tx, &shape.base, &shape.twin).await?;
            let renames = plan_index_renames(
                &indexes(&mut tx, &shape.base).await?,
                &indexes(&mut tx, &shape.twin).await?,
            );
            rename_table(&mut tx, &shape.base, &shape.retired).await?;
            rename_table(&mut tx, &shape.twin, &shape.base).await?;
            for r in &renames {
                rename_index(&mut tx, &r.old, &r.retired).await?;
                report
                    .indexes_renamed
                    .push(format!("{} -> {}", r.old, r.retired));
            }
            for r in &renames {
                if let Some(t) = &r.twin {
                    rename_index(&mut tx, t, &r.old).await?;
                    report.indexes_renamed.push(format!("{t} -> {}", r.old));
                }
            }
            hand_over_sequences(&mut tx, &shape.retired, &shape.base, &mut report).await?;
            copy_grants(&mut tx, &shape.retired, &shape.base).await?;
            attach_dependents(&mut tx, shape, &detached, &mut report).await?;
            let details = serde_json::json!({ "indexes": renames });
            record(&mut tx, shape, "swapped", &shape.base, details).await?;
            tx.commit().await?;
            report.lock_held_ms = locked.elapsed().as_secs_f64() * 1e3;
            Ok(report)
        })
        .await
}

/// The partitioned table out, the flat table back in.
pub(super) async fn unswap(
    pool: &PgPool,
    shape: &Shape,
    locks: LockPolicy,
) -> Result<SwapReport, LifecycleError> {
    locks
        .retry(&format!("unswapping {}", shape.base), || async {
            let mut report = SwapReport::default();
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            let asked = Instant::now();
            let locked = lock_both(&mut tx, &shape.base, &shape.retired, locks).await?;
            report.lock_wait_ms = (locked - asked).as_secs_f64() * 1e3;
            steps::reach(&mut tx, steps::UNSWAP_LOCKED).await?;
            (report.rows, report.changes_replayed_under_lock) = sync::verify_locked(&mut tx, shape).await?;
            let renames: Vec<IndexRename> = {
                let details: serde_json::Value = sqlx::query_scalar(
                    "SELECT swap_details -> 'indexes' FROM bisman_table_migrations WHERE base_table = $1",
                )
                .bind(&shape.base)
                .fetch_one(&mut *tx)
                .await?;
                serde_json::from_value(details).unwrap_or_default()
            };
            let detached = detach_dependents(&mut tx, &shape.base, &shape.retired).await?;
            rename_table(&mut tx, &shape.base, &shape.twin).await?;
            rename_table(&mut tx, &shape.retired, &shape.base).await?;
            for r in &renames {
                if let Some(t) = &r.twin {
                    rename_index(&mut tx, &r.old, t).await?;
                    report.indexes_renamed.push(format!("{} -> {t}", r.old));
                }
            }
            for r in &renames {
                rename_index(&mut tx, &r.retired, &r.old).await?;
                report.indexes_renamed.push(format!("{} -> {}", r.retired, r.old));
            }
            hand_over_sequences(&mut tx, &shape.twin, &shape.base, &mut report).await?;
            attach_dependents(&mut tx, shape, &detached, &mut report).await?;
            record(&mut tx, shape, "unswapped", &shape.twin, serde_json::json!({})).await?;
            tx.commit().await?;
            report.lock_held_ms = locked.elapsed().as_secs_f64() * 1e3;
            Ok(report)
        })
        .await
}

/// The registry and the checkpoint after a swap or unswap.
async fn record(
    conn: &mut PgConnection,
    shape: &Shape,
    state: &str,
    parent: &str,
    details: serde_json::Value,
) -> Result<(), LifecycleError> {
    sqlx::query("UPDATE bisman_partitioned_tables SET parent_table = $2 WHERE base_table = $1")
        .bind(&shape.base)
        .bind(parent)
        .execute(&mut *conn)
        .await?;
    let stamp = if state == "swapped" {
        "swapped_at"
    } else {
        "unswapped_at"
    };
    sqlx::query(&format!(
        "UPDATE bisman_table_migrations SET state = $2, {stamp} = now(), updated_at = now(),
             swap_details = CASE WHEN $3::jsonb = '{{}}'::jsonb THEN swap_details ELSE $3 END
         WHERE base_table = $1"
    ))
    .bind(&shape.base)
    .bind(state)
    .bind(details)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stops the change log of a swapped table for good.
pub(super) async fn finish(
    pool: &PgPool,
    shape: &Shape,
    locks: LockPolicy,
) -> Result<(), LifecycleError> {
    locks
        .retry(&format!("finishing {}", shape.base), || async {
            let mut conn = pool.acquire().await?;
            let mut tx = conn.begin().await?;
            locks.apply(&mut tx).await?;
            drop_log_triggers(&mut tx, &shape.base).await?;
            for t in ["bisman_table_changes", "bisman_table_dirty_keys"] {
                sqlx::query(&format!("DELETE FROM {t} WHERE base_table = $1"))
                    .bind(&shape.base)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "UPDATE bisman_table_migrations SET state = 'finished', finished_at = now(), updated_at = now()
                 WHERE base_table = $1",
            )
            .bind(&shape.base)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
}
