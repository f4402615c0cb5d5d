//! What a table migration works on: names, key, columns, state; and `prep`
//! (partitions for the data's range, outgoing foreign keys on the twin, the
//! change-log triggers, the checkpoint row).

use sqlx::{Acquire, PgConnection, PgPool, Row};

use crate::lifecycle::ident::{checked, quote, quote_literal};
use crate::lifecycle::registry::{self, ManagedTable};
use crate::lifecycle::{LifecycleError, LockPolicy};
use crate::partitions::Month;

/// The names and columns of one migration, all from the registry or catalog.
#[derive(Debug, Clone)]
pub(super) struct Shape {
    pub table: ManagedTable,
    /// The name the application uses.
    pub base: String,
    /// The partitioned twin's own name.
    pub twin: String,
    /// The flat table's name once retired.
    pub retired: String,
    /// The single-column primary key of the flat table.
    pub key: String,
    /// Its SQL type.
    pub key_type: String,
    /// The columns, in the flat table's order.
    pub columns: Vec<String>,
    /// The checkpoint's state, `None` before the first run.
    pub state: Option<String>,
    /// The fill checkpoint.
    pub last_key: Option<String>,
}

impl Shape {
    pub(super) async fn load(pool: &PgPool, base: &str) -> Result<Shape, LifecycleError> {
        let mut conn = pool.acquire().await?;
        let table = registry::root(&mut conn, base).await?;
        let row = sqlx::query(
            "SELECT state, key_column, shadow_table, retired_table, last_key
             FROM bisman_table_migrations WHERE base_table = $1",
        )
        .bind(base)
        .fetch_optional(&mut *conn)
        .await?;
        let (state, twin, retired, last_key) = match &row {
            Some(r) => (
                Some(r.try_get::<String, _>("state")?),
                r.try_get("shadow_table")?,
                r.try_get("retired_table")?,
                r.try_get("last_key")?,
            ),
            None => {
                if table.parent_table == table.base_table {
                    return Err(LifecycleError::Invalid(format!(
                        "{base} is already partitioned; there is nothing to migrate"
                    )));
                }
                (None, table.parent_table.clone(), retired_name(base), None)
            }
        };
        // The flat table: the live one before the swap, the retired one after.
        let flat = match state.as_deref() {
            Some("swapped") | Some("finished") => retired.clone(),
            _ => base.to_string(),
        };
        let (key, key_type) = primary_key(&mut conn, &flat).await?;
        let columns: Vec<String> = registry::columns(&mut conn, &flat)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        Ok(Shape {
            base: base.to_string(),
            twin,
            retired,
            key,
            key_type,
            columns,
            state,
            last_key,
            table,
        })
    }

    /// The checks and set-up before the first batch.
    pub(super) async fn prepare(
        &self,
        pool: &PgPool,
        locks: LockPolicy,
    ) -> Result<(), LifecycleError> {
        let mut conn = pool.acquire().await?;
        self.check(&mut conn).await?;
        {
            // The months are made by the premake SQL, which retries its own locks.
            let mut tx = conn.begin().await?;
            locks.apply(&mut tx).await?;
            self.make_partitions(&mut tx).await?;
            tx.commit().await?;
        }
        locks
            .retry(&format!("adding foreign keys to {}", self.twin), || async {
                let mut tx = pool.begin().await?;
                locks.apply(&mut tx).await?;
                copy_outgoing_foreign_keys(&mut tx, &self.base, &self.twin).await?;
                tx.commit().await?;
                Ok(())
            })
            .await?;
        drop(conn);
        locks
            .retry(&format!("installing the change log on {}", self.base), || async {
                let mut conn = pool.acquire().await?;
                let mut tx = conn.begin().await?;
                locks.apply(&mut tx).await?;
                install_log_triggers(&mut tx, &self.base, &self.key).await?;
                sqlx::query(
                    "INSERT INTO bisman_table_migrations (base_table, state, key_column, shadow_table, retired_table)
                     VALUES ($1, 'filling', $2, $3, $4)",
                )
                .bind(&self.base)
                .bind(&self.key)
                .bind(&self.twin)
                .bind(&self.retired)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            })
            .await
    }

    async fn check(&self, conn: &mut PgConnection) -> Result<(), LifecycleError> {
        let kinds: Vec<(String, String)> = sqlx::query_as(
            "SELECT n, coalesce((SELECT relkind::text FROM pg_class WHERE oid = to_regclass(quote_ident(n))), '-')
             FROM unnest(ARRAY[$1, $2]) n",
        )
        .bind(&self.base)
        .bind(&self.twin)
        .fetch_all(&mut *conn)
        .await?;
        if kinds[0].1 != "r" || kinds[1].1 != "p" {
            return Err(LifecycleError::Invalid(format!(
                "expected {} to be a plain table and {} a partitioned one (found {:?})",
                self.base, self.twin, kinds
            )));
        }
        if registry::columns(conn, &self.base).await? != registry::columns(conn, &self.twin).await?
        {
            return Err(LifecycleError::Invalid(format!(
                "{} and {} have different columns; give the twin the same columns in the same order first",
                self.base, self.twin
            )));
        }
        let busy: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            quote(&self.twin)
        ))
        .fetch_one(&mut *conn)
        .await?;
        if busy {
            return Err(LifecycleError::Invalid(format!(
                "{} already holds rows that no `bisman partitions migrate` put there \
                 (the spec's manual INSERT … SELECT?); empty it before migrating",
                self.twin
            )));
        }
        let views: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT v.relname::text FROM pg_depend d
             JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
             WHERE d.refobjid = to_regclass(quote_ident($1)) AND v.oid <> d.refobjid",
        )
        .bind(&self.base)
        .fetch_all(&mut *conn)
        .await?;
        if !views.is_empty() {
            return Err(LifecycleError::Invalid(format!(
                "views depend on {} ({}); they would keep reading the retired table. \
                 Drop them and create them again after the swap",
                self.base,
                views.join(", ")
            )));
        }
        Ok(())
    }

    /// Months covering the data's real range, through the premake window.
    async fn make_partitions(&self, conn: &mut PgConnection) -> Result<(), LifecycleError> {
        let col = quote(&self.table.partition_column);
        let (lo, hi): (Option<chrono::NaiveDate>, Option<chrono::NaiveDate>) =
            sqlx::query_as(&format!(
                "SELECT bisman_utc_month(min({col})), bisman_utc_month(max({col})) FROM {}",
                quote(&self.base)
            ))
            .fetch_one(&mut *conn)
            .await?;
        let current = Month::current();
        let to_month = |d: chrono::NaiveDate| {
            Month::containing_naive(d.and_hms_opt(0, 0, 0).unwrap_or_default())
        };
        let first = lo.map(to_month).unwrap_or(current).min(current);
        let last = hi
            .map(to_month)
            .unwrap_or(current)
            .max(current.plus(self.table.premake_months));
        // Beyond 240 months the oldest rows wait in the default partition.
        let first = first.max(last.plus(-239));
        sqlx::query("SELECT count(*) FROM bisman_ensure_partitions($1, $2, $3)")
            .bind(&self.base)
            .bind(first.first_day())
            .bind(first.months_until(last) + 1)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// What a run would do, for `--dry-run`.
    pub(super) async fn plan(&self, pool: &PgPool) -> Result<Vec<String>, LifecycleError> {
        let mut conn = pool.acquire().await?;
        let mut out = vec![format!(
            "{} (key {} {}) -> {} partitioned by {}; retired name {}",
            self.base,
            self.key,
            self.key_type,
            self.twin,
            self.table.partition_column,
            self.retired
        )];
        let estimate: i64 = sqlx::query_scalar(
            "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass(quote_ident($1))",
        )
        .bind(&self.base)
        .fetch_one(&mut *conn)
        .await?;
        out.push(format!(
            "about {estimate} rows to copy; checkpoint: {:?}",
            self.last_key
        ));
        for fk in super::swap::foreign_keys_into(&mut conn, &self.base).await? {
            out.push(format!(
                "foreign key {} on {} will be re-pointed",
                fk.name, fk.child
            ));
        }
        Ok(out)
    }
}

fn retired_name(base: &str) -> String {
    format!("{}_retired", &base[..base.len().min(55)])
}

/// The single-column primary key of `table` and its type.
async fn primary_key(
    conn: &mut PgConnection,
    table: &str,
) -> Result<(String, String), LifecycleError> {
    let keys: Vec<(String, String)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod)
         FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
         WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisprimary",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    match keys.as_slice() {
        [(name, ty)] => {
            checked("key column", name)?;
            let plain = ty.chars().all(|c| c.is_ascii_lowercase() || c == ' ')
                || ty.starts_with("character varying(");
            if !plain {
                return Err(LifecycleError::Invalid(format!(
                    "unsupported key type {ty}"
                )));
            }
            Ok((name.clone(), ty.clone()))
        }
        _ => Err(LifecycleError::Invalid(format!(
            "{table} needs a single-column primary key to be migrated in key order"
        ))),
    }
}

/// The change-log and TRUNCATE-guard triggers on `table`.
pub(super) async fn install_log_triggers(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
) -> Result<(), LifecycleError> {
    let base = quote_literal(table);
    for sql in [
        format!(
            "CREATE OR REPLACE TRIGGER bisman_migrate_log AFTER INSERT OR UPDATE OR DELETE ON {} \
             FOR EACH ROW EXECUTE FUNCTION bisman_log_table_change({base}, {})",
            quote(table),
            quote_literal(key)
        ),
        format!(
            "CREATE OR REPLACE TRIGGER bisman_migrate_no_truncate BEFORE TRUNCATE ON {} \
             FOR EACH STATEMENT EXECUTE FUNCTION bisman_refuse_truncate({base})",
            quote(table)
        ),
    ] {
        sqlx::query(&sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Removes them.
pub(super) async fn drop_log_triggers(
    conn: &mut PgConnection,
    table: &str,
) -> Result<(), LifecycleError> {
    for name in ["bisman_migrate_log", "bisman_migrate_no_truncate"] {
        sqlx::query(&format!(
            "DROP TRIGGER IF EXISTS {name} ON {}",
            quote(table)
        ))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The flat table's foreign keys to other tables, added to the (still
/// empty) twin, where validating them costs nothing.
async fn copy_outgoing_foreign_keys(
    conn: &mut PgConnection,
    from: &str,
    to: &str,
) -> Result<(), LifecycleError> {
    let defs: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
         WHERE c.contype = 'f' AND c.conrelid = to_regclass(quote_ident($1)) AND c.conparentid = 0
           AND NOT EXISTS (SELECT 1 FROM pg_constraint t
                           WHERE t.contype = 'f' AND t.conrelid = to_regclass(quote_ident($2))
                             AND pg_get_constraintdef(t.oid) = pg_get_constraintdef(c.oid))",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    for def in defs {
        // The definition comes from pg_get_constraintdef of a catalog row.
        sqlx::query(&format!("ALTER TABLE {} ADD {def}", quote(to)))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
