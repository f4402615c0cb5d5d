//! Short locks: every DDL that blocks writers runs under `lock_timeout` and
//! is retried a few times, so a long transaction elsewhere makes bisman wait
//! and try again instead of queueing every writer behind it.

use std::future::Future;
use std::time::Duration;

use sqlx::PgConnection;

use super::LifecycleError;

/// How long to wait for a lock, and how often to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    /// `lock_timeout` of each attempt, in milliseconds.
    pub timeout_ms: u64,
    /// Attempts before giving up.
    pub attempts: u32,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            timeout_ms: 5_000,
            attempts: 5,
        }
    }
}

impl LockPolicy {
    /// Sets `lock_timeout` for the current transaction.
    pub(crate) async fn apply(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        // SET does not take bind parameters; the value is a number we format.
        sqlx::query(&format!("SET LOCAL lock_timeout = '{}ms'", self.timeout_ms))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Runs `attempt` until it does not fail on a lock timeout, at most
    /// `attempts` times, pausing a little longer after each failure.
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
                    tracing::warn!(
                        what,
                        attempt = n,
                        "lock not granted within lock_timeout; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(n))).await;
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
