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
//! `bisman_partitioned_tables`, the ledger `bisman_partition_archives`), the
//! checkpoint tables of `013`, and the month-making and month-dropping SQL of
//! `016` (`bisman_premake_month`, `bisman_retire_months`), which the spec's
//! `create_future_partitions` and `drop_old_partitions` call too: one
//! implementation of the rules. It must not drop a row that is not in an
//! archive holding exactly the rows dropped (checked under the drop's lock)
//! unless the caller asked for exactly that; every lock that blocks the
//! application is asked for with a short timeout and retried, and every
//! maintenance statement runs under an explicit limit ([`LockPolicy`]); each
//! operation marks its named [`steps`], where the concurrency tests pause it.
//! Every identifier it sends to PostgreSQL comes from the registry or the
//! catalog and is quoted by [`ident::quote`].

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
pub mod steps;
pub mod table_migration;

pub use error::LifecycleError;
pub use locks::LockPolicy;
pub use progress::{NoProgress, Progress};
