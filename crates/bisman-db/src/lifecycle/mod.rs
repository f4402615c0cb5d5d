//! The life of a partitioned table after the P3 migration created it.
//!
//! This module owns the Rust side of partition management: reading where
//! every managed table stands ([`status`]), premaking months and emptying
//! default partitions in batches ([`premake`]), archiving months to verified
//! files ([`archive`]), retiring archived months ([`retain`]), loading an
//! archive back ([`restore`]), and turning a live flat table into its
//! partitioned twin ([`table_migration`]).
//!
//! It builds on the SQL of migration `012` (the registry
//! `bisman_partitioned_tables`, the ledger `bisman_partition_archives`,
//! `bisman_ensure_partitions`, `bisman_drop_blocker`) and the checkpoint
//! tables of `013`. It must not drop a row that was not archived and verified
//! unless the caller asked for exactly that, and every identifier it sends to
//! PostgreSQL comes from the registry or the catalog and is quoted by
//! [`ident::quote`].

pub mod archive;
mod error;
pub mod ident;
mod locks;
pub mod premake;
mod progress;
pub mod registry;
pub mod restore;
pub mod retain;
pub mod status;
pub mod table_migration;

pub use error::LifecycleError;
pub use locks::LockPolicy;
pub use progress::{NoProgress, Progress};
