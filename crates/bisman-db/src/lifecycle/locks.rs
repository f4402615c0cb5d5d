//! The limits every maintenance transaction runs under.
//!
//! - A short `lock_timeout` on every lock that blocks the application, and
//!   retries: a lock request queued behind a long reader would block every
//!   later query on the table for as long as it waits, so bisman gives up
//!   after a moment, lets the queue drain and asks again. Keep it below the
//!   server's `deadlock_timeout` (1 s by default): when maintenance and a
//!   transaction of the application wait for each other, maintenance's
//!   request times out first and the application's query goes on instead of
//!   failing with "deadlock detected".
//! - An explicit `statement_timeout` for maintenance statements (an archive's
//!   COPY, a checksum over a month, a restore's load), never the pool's
//!   generic one, which is sized for the application's queries.
//!
//! [`LockPolicy::apply`] sets both for the current transaction, and passes
//! the lock settings on to the SQL functions of migration `016`
//! (`bisman.lock_timeout`, `bisman.lock_attempts`), which retry their own
//! locks the same way.

use std::future::Future;
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use super::LifecycleError;

/// How long to wait for a lock, how often to try, and how long a
/// maintenance statement may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    /// `lock_timeout` of each attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts before giving up.
    pub attempts: u32,
    /// `statement_timeout` of maintenance statements, in milliseconds
    /// (0: none).
    pub statement_timeout_ms: u64,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            timeout_ms: 250,
            attempts: 40,
            statement_timeout_ms: 3_600_000,
        }
    }
}

impl LockPolicy {
    /// Sets the lock and statement limits for the current transaction (for
    /// callers of the SQL lifecycle functions, such as the scheduler's
    /// `drop_old_partitions`).
    pub async fn apply(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        // set_config(…, true) is SET LOCAL with bind parameters, in one round trip.
        let lock = format!("{}ms", self.timeout_ms);
        sqlx::query(
            "SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true),
                    set_config('bisman.lock_timeout', $1, true), set_config('bisman.lock_attempts', $3, true)",
        )
        .bind(&lock)
        .bind(format!("{}ms", self.statement_timeout_ms))
        .bind(self.attempts.max(1).to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// A transaction on `pool` with [`LockPolicy::apply`] done.
    pub(crate) async fn begin(
        &self,
        pool: &PgPool,
    ) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        self.apply(&mut tx).await?;
        Ok(tx)
    }

    /// The statement limit for the session (for statements that cannot run
    /// in a transaction, such as VACUUM); undo with [`LockPolicy::reset`].
    pub(crate) async fn apply_session(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT set_config('lock_timeout', $1, false), set_config('statement_timeout', $2, false)")
            .bind(format!("{}ms", self.timeout_ms))
            .bind(format!("{}ms", self.statement_timeout_ms))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Back to the pool's settings.
    pub(crate) async fn reset(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query("RESET lock_timeout")
            .execute(&mut *conn)
            .await?;
        sqlx::query("RESET statement_timeout")
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The pause after failed attempt `n`: growing, capped at a second,
    /// with jitter so that two waiters do not retry in step.
    pub(crate) fn backoff(n: u32) -> Duration {
        let base = (50 * u64::from(n)).min(1_000);
        // No randomness crate for this: the clock's nanoseconds are jitter enough.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::from(d.subsec_nanos()))
            .unwrap_or(0);
        Duration::from_millis(base / 2 + nanos % (base + 1))
    }

    /// Runs `attempt` until it does not fail on a lock timeout (or as the
    /// victim of a deadlock), at most `attempts` times, pausing a little
    /// longer after each failure. Each attempt must be its own transaction,
    /// so that a failed one releases every lock it had.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        what: &str,
        mut attempt: F,
    ) -> Result<T, LifecycleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LifecycleError>>,
    {
        let attempts = self.attempts.max(1);
        for n in 1..=attempts {
            match attempt().await {
                Err(LifecycleError::Database(e)) if LifecycleError::is_lock_timeout(&e) => {
                    tracing::debug!(
                        what,
                        attempt = n,
                        "lock not granted within lock_timeout; retrying"
                    );
                    tokio::time::sleep(Self::backoff(n)).await;
                }
                other => return other,
            }
        }
        Err(LifecycleError::LockTimeout {
            what: what.to_string(),
            timeout_ms: self.timeout_ms,
            attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for n in 1..100 {
            let d = LockPolicy::backoff(n).as_millis() as u64;
            let base = (50 * u64::from(n)).min(1_000);
            assert!(d >= base / 2 && d <= base / 2 + base, "{n}: {d}");
        }
    }
}
