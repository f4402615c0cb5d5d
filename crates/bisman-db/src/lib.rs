//! Bisman's PostgreSQL side.
//!
//! - [`migrate`]: the numbered SQL migrations embedded in the binary (the ERP
//!   baseline, `001`–`011`, and the P3 migration, `012`) and the migrator
//!   that applies them.
//! - [`embedded`]: a private PostgreSQL started from the machine's own
//!   binaries when no `DATABASE_URL` is given (and hot standbys of a
//!   primary, made with `pg_basebackup`).
//! - [`pool`]: connection pools with the settings every Bisman process uses.
//! - [`partitions`]: month arithmetic and the partition names the SQL
//!   functions use.
//! - [`lifecycle`]: partition status, premake, archive, retention, restore,
//!   and the migration of a live flat table to its partitioned twin.
//! - [`normalize`]: JSONB read receipts and reactions moved into tables
//!   online, and verified.
//! - [`replicas`]: read-only pools to hot standbys, their health and lag,
//!   and where a read may go (read-your-writes by WAL position).
//!
//! This crate owns SQL. It must not know about HTTP, caches or the CLI.

pub mod embedded;
pub mod lifecycle;
pub mod migrate;
pub mod normalize;
pub mod partitions;
pub mod pool;
pub mod replicas;

pub use migrate::{MigrateError, Migrator};
pub use pool::connect;
