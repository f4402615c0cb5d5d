//! The reliability suite (RELIABILITY.md): `bisman serve` processes on
//! loopback under the load driver of `bisman-load`, with faults injected
//! and invariants counted, never timed.
//!
//! - [`load`]: a load run (30 s by default), then the security scans of
//!   what it left: tokens, storage, logs.
//! - [`redis`]: Redis stopped, restarted and black-holed under load.
//! - [`postgres`]: PostgreSQL restarted, and its connections cut and
//!   stalled, under load.
//! - [`maintenance`]: an instance SIGKILLed in the middle of a maintenance
//!   job, under load.
//! - [`replicas`]: read replicas stopped and promoted under the read-heavy
//!   load, every post read back by its poster.
//! - [`cli`]: `bisman loadtest` end to end.
//!
//! Scenarios run one at a time. `BISMAN_LOAD_SECS`, `BISMAN_FAULT_REQUESTS`,
//! `BISMAN_LOAD_CONCURRENCY` and `BISMAN_LOAD_INSTANCES` make them longer.

mod harness;

mod cli;
mod load;
mod maintenance;
mod postgres;
mod redis;
mod replicas;
