//! Bisman's load and fault suite driver.
//!
//! Drives the ERP's hot paths (log in, permission check, message page, mark
//! read, react, post) against several `bisman serve` instances for a bounded
//! time, the way a load balancer would spread them, and measures what must
//! hold while it runs:
//!
//! - every request is classified (expected answer, 503, other 5xx, 4xx,
//!   transport failure), per phase, so that a fault test can say "503 is
//!   allowed while PostgreSQL is down, nothing fails once it is back";
//! - a prober revokes and re-grants a permission of the `Staff` role
//!   throughout; every check that began after a revocation was acknowledged
//!   and answered "allowed" before the next grant began is a violation;
//! - every acknowledged write (post, reaction, read receipt) is remembered
//!   and can be looked up in PostgreSQL afterwards ([`verify_writes`]);
//! - each instance's resident memory (RSS from `/proc/<pid>/status`) is
//!   sampled at the start, throughout, and at the end.
//!
//! `bisman loadtest` runs it from the command line; the fault tests in
//! `crates/bisman/tests/` drive it around injected faults. Nothing here
//! asserts on time: latencies are measured and reported, invariants are
//! counted.
//!
//! - [`instance`]: a `bisman serve` child process (spawn, address, RSS, kill).
//! - [`client`]: the HTTP client.
//! - [`cpu`]: CPU time per process (tree) over a run, from `/proc`.
//! - [`mix`]: the operations and their weights.
//! - [`load`]: workers, prober, phases, and the running load's handle.
//! - [`report`]: the figures, as JSON and Markdown.
//! - [`replicas`]: read replicas' lag and routing counts over a run, from
//!   the instances' `/readyz`.

pub mod client;
pub mod cpu;
mod error;
pub mod instance;
pub mod load;
pub mod mix;
mod probe;
pub mod replicas;
pub mod report;
mod stats;
mod writes;

pub use error::LoadError;
pub use instance::{rss_kib, ServeProcess};
pub use load::{Load, LoadConfig, Target};
pub use mix::{Mix, Op};
pub use replicas::{ReplicaSummary, ReplicaWatch};
pub use report::Report;
pub use writes::{verify_writes, Acknowledged, WritesCheck};
