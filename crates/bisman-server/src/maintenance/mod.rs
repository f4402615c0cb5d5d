//! The maintenance scheduler: what the spec's crontab did, inside the
//! service.
//!
//! Jobs ([`Job`]): partition premake, retention (archive-first when an
//! archive folder is configured; otherwise only empty or already archived
//! months are dropped), `permission_cache` cleanup and `pg_stat_statements`
//! snapshots for `v_slow_queries`.
//!
//! With N instances each job runs once per interval: an instance runs a job
//! only while holding the job's PostgreSQL advisory lock (on a connection of
//! its own, so that a crashed instance's lock dies with its connection),
//! and only when `bisman_job_state` says it has not started within its
//! interval. Every run is logged in `bisman_job_runs` with its instance,
//! duration and outcome; `/api/v1/ops/jobs` and `/metrics` show them.
//!
//! The spec's cron lines keep working as an alternative (the SQL functions
//! are unchanged); turn the scheduler off with `BISMAN_MAINTENANCE=false`.

mod jobs;
mod scheduler;

pub use jobs::{Job, JobContext};
pub use scheduler::{JobCounters, JobOutcome, Scheduler};
