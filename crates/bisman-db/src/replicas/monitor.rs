//! The monitor: every `check_every`, the primary's flushed WAL position,
//! then every standby at once (each on a connection of its own, so that a
//! busy read pool never delays a check), with a timeout.

use std::sync::Weak;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tokio::time::{timeout, MissedTickBehavior};

use super::{primary_flush_lsn, write, Inner, Lag, Lsn, Observed, Replica, ReplicaState};

/// Checks until the replica set is dropped.
pub(crate) async fn run(set: Weak<Inner>) {
    let n = match set.upgrade() {
        Some(inner) => inner.replicas.len(),
        None => return,
    };
    let mut connections: Vec<Option<PgConnection>> = (0..n).map(|_| None).collect();
    let mut ticks = {
        let Some(inner) = set.upgrade() else { return };
        tokio::time::interval(inner.check_every)
    };
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = set.upgrade() else { return };
        check(&inner, &mut connections).await;
    }
}

/// What one standby said.
struct Answer {
    in_recovery: bool,
    replay: Option<Lsn>,
    paused: Option<bool>,
}

async fn check(inner: &Inner, connections: &mut [Option<PgConnection>]) {
    let sampled = Instant::now();
    if let Ok(Ok(lsn)) = timeout(inner.check_timeout, primary_flush_lsn(&inner.primary)).await {
        inner
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sampled, lsn);
    }
    let answers = futures::future::join_all(
        inner
            .replicas
            .iter()
            .zip(connections.iter_mut())
            .map(|(r, c)| ask(r, c, inner.check_timeout)),
    )
    .await;
    let now = Instant::now();
    let history = inner
        .history
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for (replica, answer) in inner.replicas.iter().zip(answers) {
        let mut seen = Observed {
            checked_at: Some(now),
            ..Observed::default()
        };
        match answer {
            Err(error) => {
                seen.state = ReplicaState::Down;
                seen.error = Some(error);
            }
            Ok(a) => {
                seen.replay = a.replay;
                seen.paused = a.paused;
                if let (Some(replay), Some(latest)) = (a.replay, history.latest()) {
                    seen.bytes_behind = Some(latest.bytes_after(replay));
                }
                seen.state = if !a.in_recovery {
                    seen.error = Some("not a standby any more (promoted)".into());
                    ReplicaState::Promoted
                } else if let Some(replay) = a.replay {
                    seen.lag = history.lag(replay, now);
                    match seen.lag {
                        Lag::Behind(d) if d <= inner.max_lag => ReplicaState::Healthy,
                        Lag::Unknown => {
                            seen.error = Some("the primary's position is not known yet".into());
                            ReplicaState::Lagging
                        }
                        _ => ReplicaState::Lagging,
                    }
                } else {
                    seen.error = Some("has replayed nothing yet".into());
                    ReplicaState::Lagging
                };
            }
        }
        let mut observed = write(&replica.observed);
        if observed.state != seen.state {
            log_change(&replica.name, observed.state, &seen);
        }
        *observed = seen;
    }
}

fn log_change(name: &str, from: ReplicaState, to: &Observed) {
    let (from, state) = (from.as_str(), to.state.as_str());
    let error = to.error.as_deref().unwrap_or("");
    match to.state {
        ReplicaState::Healthy => {
            tracing::info!(replica = name, from, state, "replica serves reads")
        }
        _ => tracing::warn!(replica = name, from, state, error, lag = ?to.lag, "replica skipped"),
    }
}

/// Asks one standby where it stands, (re)connecting when needed.
async fn ask(
    replica: &Replica,
    connection: &mut Option<PgConnection>,
    limit: Duration,
) -> Result<Answer, String> {
    let attempt = async {
        if connection.is_none() {
            *connection = Some(PgConnection::connect_with(&replica.check_options).await?);
        }
        let conn = connection.as_mut().expect("connected just above");
        let (in_recovery, replay, paused): (bool, Option<String>, Option<bool>) = sqlx::query_as(
            "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
                    CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok::<_, sqlx::Error>(Answer {
            in_recovery,
            replay: replay.and_then(|t| t.parse().ok()),
            paused,
        })
    };
    let result = match timeout(limit, attempt).await {
        Ok(Ok(answer)) => return Ok(answer),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {limit:?}"),
    };
    // Whatever state the connection is in, start afresh next time.
    *connection = None;
    Err(result)
}
