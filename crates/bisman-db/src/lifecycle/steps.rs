//! The named steps of the lifecycle operations.
//!
//! At each step an operation calls the SQL function
//! `bisman_lifecycle_step(name)` on the connection (inside the transaction)
//! doing the work. In a database it does nothing; the concurrency tests
//! replace it, in their own database, with one that pauses on an advisory
//! lock, so that a second session can write, update, delete or commit at
//! exactly that point (the interleavings listed in RELIABILITY.md). The SQL
//! functions of migration `016` call it at their own steps.

use sqlx::PgConnection;

/// Archive: the month's rows counted and checksummed in the export's
/// snapshot, before the export.
pub const ARCHIVE_SNAPSHOT: &str = "archive.snapshot";
/// Archive: the file written and read back, before the ledger records it.
pub const ARCHIVE_VERIFIED: &str = "archive.verified";
/// Retain: the month archived (or found archived), before the drop.
pub const RETAIN_ARCHIVED: &str = "retain.archived";
/// Drop (retain, `drop_old_partitions`): the months locked against writes,
/// before their content is checked.
pub const RETIRE_LOCKED: &str = "retire.locked";
/// Drop: content checked under the lock, before detach and drop.
pub const RETIRE_CHECKED: &str = "retire.checked";
/// Drop: detached and dropped, before the commit.
pub const RETIRE_DROPPED: &str = "retire.dropped";
/// A month made (premake, restore, late rows): its table made, with indexes
/// and bounds, and the default partition's rows of the month copied in,
/// before any lock that blocks writers.
pub const MONTH_STAGED: &str = "month.staged";
/// A month made: the parents locked against writes, before the default
/// partition's rows are moved and the month attached.
pub const MONTH_LOCKED: &str = "month.locked";
/// A month made: attached, before the commit.
pub const MONTH_ATTACHED: &str = "month.attached";
/// Restore: the archive loaded and checked, before the month is made.
pub const RESTORE_LOADED: &str = "restore.loaded";
/// Migrate: change log and checkpoint in place, before the first batch.
pub const MIGRATE_PREPARED: &str = "migrate.prepared";
/// Migrate: a fill batch copied, before its commit.
pub const MIGRATE_BATCH: &str = "migrate.batch";
/// Migrate: caught up with the change log, before the full comparison.
pub const MIGRATE_CAUGHT_UP: &str = "migrate.caught_up";
/// Migrate: compared on one snapshot, before the swap.
pub const MIGRATE_VERIFIED: &str = "migrate.verified";
/// Swap: both tables locked, before the last changes are replayed.
pub const SWAP_LOCKED: &str = "swap.locked";
/// Unswap: both tables locked, before the last changes are replayed.
pub const UNSWAP_LOCKED: &str = "unswap.locked";
/// Normalize: the mirror trigger installed, before the backfill.
pub const NORMALIZE_MIRRORED: &str = "normalize.mirrored";
/// Normalize: inside a backfill batch, its messages read (and locked), as it
/// inserts rows. The batch is one SQL statement: the tests reach this step
/// from a trigger on the table it fills.
pub const NORMALIZE_BATCH: &str = "normalize.batch";

/// Marks `name` on `conn`.
pub(crate) async fn reach(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT bisman_lifecycle_step($1)")
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}
