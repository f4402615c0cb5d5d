//! Keeping near-caches of all instances in step: the subscription loop, the
//! heartbeat (self-pings and registry refresh), and invalidation fan-out
//! with acknowledgements. The protocol and why it is sound are in
//! `crate::near`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::{Bus, BusMessage};
use crate::keys::Scope;
use crate::near::Near;

/// Scopes per bus message (PostgreSQL's NOTIFY takes at most 8000 bytes).
const SCOPES_PER_MESSAGE: usize = 100;

struct Waiter {
    pending: HashSet<String>,
    done: Arc<Notify>,
}

/// How an invalidation reached the other instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Delivery {
    /// Instances that acknowledged.
    pub acknowledged: usize,
    /// Instances that did not in time (they stopped using L1 when the lease ran out).
    pub unacknowledged: usize,
    /// Whether the call waited a lease (or an entry TTL) instead of acknowledgements.
    pub waited_out: bool,
}

/// The synchroniser of one instance.
pub(crate) struct Synchronizer {
    pub instance: String,
    bus: Arc<dyn Bus>,
    near: Arc<Near>,
    lease: Duration,
    waiters: Mutex<HashMap<Uuid, Waiter>>,
    pings: Mutex<VecDeque<(u64, Instant)>>,
    seq: AtomicU64,
    stop: CancellationToken,
}

impl Drop for Synchronizer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Synchronizer {
    /// Starts the subscription and heartbeat tasks; they stop when the
    /// returned value is dropped.
    pub fn start(bus: Arc<dyn Bus>, near: Arc<Near>, lease: Duration) -> Arc<Self> {
        let sync = Arc::new(Self {
            instance: Uuid::new_v4().simple().to_string(),
            bus,
            near,
            lease,
            waiters: Mutex::new(HashMap::new()),
            pings: Mutex::new(VecDeque::new()),
            seq: AtomicU64::new(0),
            stop: CancellationToken::new(),
        });
        let stop = sync.stop.clone();
        tokio::spawn(
            stop.clone()
                .run_until_cancelled_owned(subscription_loop(Arc::downgrade(&sync))),
        );
        tokio::spawn(stop.run_until_cancelled_owned(heartbeat_loop(Arc::downgrade(&sync))));
        sync
    }

    /// Tells every instance that `scopes` changed, after applying it here,
    /// and returns once no instance can serve the old values from L1.
    pub async fn broadcast(&self, scopes: &[Scope]) -> Delivery {
        self.near.apply(scopes);
        let expected: Option<HashSet<String>> = match self.bus.instances().await {
            Ok(list) => Some(list.into_iter().filter(|i| *i != self.instance).collect()),
            Err(e) => {
                tracing::warn!(error = %e, "invalidation: cannot read the instance registry; waiting a full lease");
                None
            }
        };
        let mut waits = Vec::new();
        let mut published_all = true;
        for chunk in scopes.chunks(SCOPES_PER_MESSAGE) {
            let id = Uuid::new_v4();
            let done = Arc::new(Notify::new());
            let pending = expected.clone().unwrap_or_default();
            self.lock_waiters().insert(
                id,
                Waiter {
                    pending: pending.clone(),
                    done: done.clone(),
                },
            );
            let msg = BusMessage::Invalidate {
                id,
                from: self.instance.clone(),
                scopes: chunk.to_vec(),
                sessions: vec![],
            };
            if let Err(e) = self.bus.publish(msg.encode()).await {
                tracing::warn!(error = %e, "invalidation: publishing failed");
                published_all = false;
            }
            waits.push((id, done, pending.is_empty()));
        }

        let deadline = Instant::now() + self.lease + Duration::from_millis(100);
        let mut acknowledged = 0;
        let mut unacknowledged = 0;
        for (id, done, nobody) in waits {
            if !nobody && expected.is_some() && published_all {
                let _ = tokio::time::timeout_at(deadline, async {
                    loop {
                        let notified = done.notified();
                        if self
                            .lock_waiters()
                            .get(&id)
                            .is_none_or(|w| w.pending.is_empty())
                        {
                            break;
                        }
                        notified.await;
                    }
                })
                .await;
            }
            if let Some(w) = self.lock_waiters().remove(&id) {
                unacknowledged += w.pending.len();
                acknowledged += expected.as_ref().map_or(0, |e| e.len()) - w.pending.len();
            }
        }

        let waited_out = if !published_all {
            // Instances whose own subscription works never heard of it:
            // only their entry TTL bounds what they serve.
            tokio::time::sleep(self.near.entry_ttl()).await;
            true
        } else if expected.is_none() || unacknowledged > 0 {
            tokio::time::sleep_until(deadline).await;
            true
        } else {
            false
        };
        Delivery {
            acknowledged,
            unacknowledged,
            waited_out,
        }
    }

    fn lock_waiters(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Waiter>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handle(&self, text: &str) {
        match BusMessage::decode(text) {
            Some(BusMessage::Ping { from, seq }) if from == self.instance => {
                let mut pings = self.pings.lock().unwrap_or_else(|p| p.into_inner());
                while let Some((s, sent)) = pings.front().copied() {
                    if s > seq {
                        break;
                    }
                    pings.pop_front();
                    if s == seq {
                        self.near.health.confirm(sent);
                    }
                }
            }
            Some(BusMessage::Invalidate {
                id, from, scopes, ..
            }) if from != self.instance => {
                self.near.apply(&scopes);
                let ack = BusMessage::Ack {
                    id,
                    from: self.instance.clone(),
                };
                if let Err(e) = self.bus.publish(ack.encode()).await {
                    tracing::debug!(error = %e, "acknowledging an invalidation failed");
                }
            }
            Some(BusMessage::Ack { id, from }) => {
                if let Some(w) = self.lock_waiters().get_mut(&id) {
                    w.pending.remove(&from);
                    if w.pending.is_empty() {
                        w.done.notify_waiters();
                    }
                }
            }
            _ => {}
        }
    }

    async fn heartbeat(&self) {
        let started = Instant::now();
        match self.bus.register(&self.instance, self.lease * 2).await {
            Ok(()) => self.near.health.registered(started),
            Err(e) => tracing::debug!(error = %e, "instance registry refresh failed"),
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut pings = self.pings.lock().unwrap_or_else(|p| p.into_inner());
            pings.push_back((seq, Instant::now()));
            while pings.len() > 64 {
                pings.pop_front();
            }
        }
        let ping = BusMessage::Ping {
            from: self.instance.clone(),
            seq,
        };
        if let Err(e) = self.bus.publish(ping.encode()).await {
            tracing::debug!(error = %e, "near-cache ping failed");
        }
    }

    /// The instances registered now.
    pub async fn instances(&self) -> crate::error::Result<Vec<String>> {
        self.bus.instances().await
    }

    /// Leaves the registry (clean shutdown).
    pub async fn deregister(&self) {
        let _ = self.bus.deregister(&self.instance).await;
    }
}

async fn subscription_loop(sync: Weak<Synchronizer>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(s) = sync.upgrade() else { return };
        let stream = s.bus.subscribe().await;
        drop(s);
        match stream {
            Ok(mut stream) => {
                backoff = Duration::from_millis(100);
                if let Some(s) = sync.upgrade() {
                    s.near.set_subscribed(true);
                    tracing::info!("near-cache subscription up");
                    s.heartbeat().await;
                }
                while let Some(text) = stream.next().await {
                    let Some(s) = sync.upgrade() else { return };
                    s.handle(&text).await;
                }
                if let Some(s) = sync.upgrade() {
                    s.near.set_subscribed(false);
                    tracing::warn!(
                        "near-cache subscription lost: reading through until it is back"
                    );
                }
            }
            Err(e) => tracing::debug!(error = %e, "near-cache subscription failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn heartbeat_loop(sync: Weak<Synchronizer>) {
    loop {
        let Some(s) = sync.upgrade() else { return };
        let every = s.lease / 4;
        s.heartbeat().await;
        drop(s);
        tokio::time::sleep(every).await;
    }
}
