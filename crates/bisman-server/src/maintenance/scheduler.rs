//! Runs due jobs, once across all instances, and records every run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use super::jobs::{Job, JobContext};

/// What one attempt at a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// This instance ran it.
    Ran {
        /// Whether it succeeded.
        ok: bool,
        /// Its summary, or the error.
        detail: String,
    },
    /// It ran within its interval (here or on another instance).
    NotDue,
    /// Another instance is running it now.
    Locked,
}

/// Job, last start (epoch seconds), last duration (ms), last outcome.
type StateRow = (String, Option<f64>, Option<i64>, Option<String>);

/// Runs of this process, by job and outcome (for `/metrics`).
#[derive(Debug, Default)]
pub struct JobCounters {
    runs: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl JobCounters {
    fn record(&self, job: Job, ok: bool) {
        if let Ok(mut runs) = self.runs.lock() {
            *runs
                .entry((job.name(), if ok { "ok" } else { "failed" }))
                .or_default() += 1;
        }
    }

    /// Appends job metrics: this process's runs, and every job's last run
    /// from `bisman_job_state` (the same on every instance).
    pub async fn render(&self, pool: &PgPool, out: &mut String) {
        out.push_str("# HELP bisman_job_runs_total Maintenance job runs made by this instance.\n");
        out.push_str("# TYPE bisman_job_runs_total counter\n");
        if let Ok(runs) = self.runs.lock() {
            for ((job, outcome), n) in runs.iter() {
                let _ = writeln!(
                    out,
                    "bisman_job_runs_total{{job=\"{job}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let state: Result<Vec<StateRow>, _> = sqlx::query_as(
            "SELECT job, extract(epoch FROM last_started_at)::float8, last_duration_ms, last_outcome
             FROM bisman_job_state ORDER BY job",
        )
        .fetch_all(pool)
        .await;
        let Ok(state) = state else { return };
        out.push_str("# HELP bisman_job_last_run_timestamp_seconds Start of each job's last run (any instance).\n");
        out.push_str("# TYPE bisman_job_last_run_timestamp_seconds gauge\n");
        for (job, started, _, _) in &state {
            if let Some(t) = started {
                let _ = writeln!(
                    out,
                    "bisman_job_last_run_timestamp_seconds{{job=\"{job}\"}} {t}"
                );
            }
        }
        out.push_str(
            "# HELP bisman_job_last_duration_seconds Duration of each job's last finished run.\n",
        );
        out.push_str("# TYPE bisman_job_last_duration_seconds gauge\n");
        for (job, _, ms, _) in &state {
            if let Some(ms) = ms {
                let _ = writeln!(
                    out,
                    "bisman_job_last_duration_seconds{{job=\"{job}\"}} {}",
                    *ms as f64 / 1000.0
                );
            }
        }
        out.push_str("# HELP bisman_job_last_success Whether each job's last run succeeded (1), failed (0).\n");
        out.push_str("# TYPE bisman_job_last_success gauge\n");
        for (job, _, _, outcome) in &state {
            if let Some(o) = outcome.as_deref().filter(|o| *o != "running") {
                let _ = writeln!(
                    out,
                    "bisman_job_last_success{{job=\"{job}\"}} {}",
                    u8::from(o == "ok")
                );
            }
        }
    }
}

/// The scheduler of one instance.
pub struct Scheduler {
    pool: PgPool,
    instance: String,
    tick: Duration,
    jobs: Vec<(Job, Duration)>,
    ctx: JobContext,
    counters: std::sync::Arc<JobCounters>,
}

impl Scheduler {
    /// A scheduler running `jobs` (each with its interval), looking for due
    /// ones every `tick`.
    pub fn new(
        pool: PgPool,
        instance: String,
        tick: Duration,
        jobs: Vec<(Job, Duration)>,
        ctx: JobContext,
        counters: std::sync::Arc<JobCounters>,
    ) -> Self {
        Self {
            pool,
            instance,
            tick,
            jobs,
            ctx,
            counters,
        }
    }

    /// Runs until `cancel` fires; a job in progress is finished first (the
    /// caller bounds that with its shutdown grace).
    pub async fn run(self, cancel: CancellationToken) {
        tracing::info!(jobs = self.jobs.len(), tick = ?self.tick, "maintenance scheduler started");
        loop {
            for (job, every) in &self.jobs {
                if cancel.is_cancelled() {
                    return;
                }
                if let Err(e) = self.try_run(*job, *every).await {
                    tracing::warn!(
                        job = job.name(),
                        error = format!("{e:#}"),
                        "maintenance attempt failed"
                    );
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(self.tick) => {}
            }
        }
    }

    /// One pass over every job: runs those that are due and not running
    /// elsewhere.
    pub async fn run_due(&self) -> Vec<(Job, anyhow::Result<JobOutcome>)> {
        let mut out = Vec::new();
        for (job, every) in &self.jobs {
            out.push((*job, self.try_run(*job, *every).await));
        }
        out
    }

    /// Runs `job` if it is due, under its advisory lock.
    #[tracing::instrument(skip(self), fields(job = job.name()))]
    pub async fn try_run(&self, job: Job, every: Duration) -> anyhow::Result<JobOutcome> {
        // A connection of its own: if this process dies, the lock goes with it.
        let mut conn = PgConnection::connect_with(&self.pool.connect_options())
            .await
            .context("connecting for the maintenance lock")?;
        let key = format!("bisman-job:{}", job.name());
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(&key)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            let _ = conn.close().await;
            return Ok(JobOutcome::Locked);
        }
        let result = self.run_locked(&mut conn, job, every).await;
        let _ = sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(&key)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
        result
    }

    async fn run_locked(
        &self,
        conn: &mut PgConnection,
        job: Job,
        every: Duration,
    ) -> anyhow::Result<JobOutcome> {
        let name = job.name();
        // We hold the job's lock, so a run still marked `running` belongs to
        // an instance that died mid-job (its lock went with its connection).
        // Record it as abandoned, and do not let its start time make the job
        // wait a whole interval: a SIGKILLed premake would otherwise leave
        // its month half-moved for six hours.
        let abandoned = sqlx::query(
            "UPDATE bisman_job_runs SET finished_at = now(), outcome = 'failed',
                    detail = 'abandoned: the instance running it stopped before it finished'
             WHERE job = $1 AND outcome = 'running'",
        )
        .bind(name)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if abandoned > 0 {
            tracing::warn!(
                job = name,
                abandoned,
                "a previous run died mid-job; running it again"
            );
        }
        let due: bool = sqlx::query_scalar(
            "SELECT NOT EXISTS (SELECT 1 FROM bisman_job_state
                                WHERE job = $1 AND last_started_at > now() - make_interval(secs => $2)
                                  AND last_outcome IS DISTINCT FROM 'running')",
        )
        .bind(name)
        .bind(every.as_secs_f64())
        .fetch_one(&mut *conn)
        .await?;
        if !due {
            return Ok(JobOutcome::NotDue);
        }
        sqlx::query(
            "INSERT INTO bisman_job_state (job, last_started_at, last_outcome, last_instance)
             VALUES ($1, now(), 'running', $2)
             ON CONFLICT (job) DO UPDATE
                SET last_started_at = now(), last_outcome = 'running', last_instance = EXCLUDED.last_instance",
        )
        .bind(name)
        .bind(&self.instance)
        .execute(&mut *conn)
        .await?;
        let run_id: i64 = sqlx::query_scalar(
            "INSERT INTO bisman_job_runs (job, instance, started_at, outcome)
             VALUES ($1, $2, now(), 'running') RETURNING id",
        )
        .bind(name)
        .bind(&self.instance)
        .fetch_one(&mut *conn)
        .await?;
        let started = Instant::now();
        let result = job.run(&self.pool, &self.ctx).await;
        let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (ok, detail) = match result {
            Ok(summary) => (true, summary),
            Err(e) => (false, format!("{e:#}")),
        };
        let outcome = if ok { "ok" } else { "failed" };
        if ok {
            tracing::info!(job = name, ms, %detail, "maintenance job done");
        } else {
            tracing::error!(job = name, ms, %detail, "maintenance job failed");
        }
        sqlx::query(
            "UPDATE bisman_job_runs SET finished_at = now(), duration_ms = $2, outcome = $3, detail = $4
             WHERE id = $1",
        )
        .bind(run_id)
        .bind(ms)
        .bind(outcome)
        .bind(&detail)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE bisman_job_state SET last_finished_at = now(), last_outcome = $2, last_duration_ms = $3,
                    last_detail = $4
             WHERE job = $1",
        )
        .bind(name)
        .bind(outcome)
        .bind(ms)
        .bind(&detail)
        .execute(&mut *conn)
        .await?;
        self.counters.record(job, ok);
        Ok(JobOutcome::Ran { ok, detail })
    }
}
