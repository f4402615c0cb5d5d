//! `bisman bench`: the spec's "expected improvements" table (spec §10),
//! measured on generated data, before and after the P3 migration, with
//! peers side by side.
//!
//! - [`options`]: what to run (`--rows`, `--quick`, `--out`, Redis) and how
//!   hard ([`options::Effort`]).
//! - [`server`]: the PostgreSQL server the data sets live on (one database
//!   per layout and size, next to the user's own).
//! - [`data`]: the data sets: shape, set-based generation in PostgreSQL,
//!   the "before" and "after" layouts, reuse and rebuild.
//! - [`measure`]: the measurements (caches, message queries, read
//!   receipts, retention), each many times after a warm-up.
//! - [`peers`]: casbin and tower-sessions' Redis store, behind the `peers`
//!   feature.
//! - [`stats`]: percentiles and throughput.
//! - [`explain`]: partitions a plan touches, read from `EXPLAIN (FORMAT JSON)`.
//! - [`machine`]: what the numbers were taken on.
//! - [`report`]: the results as Markdown, JSON and an SVG chart.
//!
//! This crate measures; it never asserts timings. It must not touch the
//! user's own database: everything it writes lives in databases named
//! `bisman_bench_*` on the same server, and Redis keys under its own prefix.

pub mod data;
pub mod error;
pub mod explain;
pub mod machine;
pub mod measure;
pub mod options;
pub mod peers;
pub mod report;
mod run;
pub mod server;
pub mod stats;

pub use bisman_db::lifecycle::{NoProgress, Progress};
pub use error::BenchError;
pub use options::{BenchOptions, Effort, Rows};
pub use report::Report;
pub use run::run;
