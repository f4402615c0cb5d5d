//! Single-flight: concurrent misses on one key make one load.
//!
//! Written here because the loads must be keyed by the generation snapshot
//! they start from (a load begun before an invalidation must not be joined
//! by a read that begins after it), which the near-cache's own coalescing
//! (moka's `get_with`) cannot express.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};

use crate::error::{CacheError, Result};
use crate::near::AnyValue;

type Outcome = std::result::Result<AnyValue, Arc<CacheError>>;

/// Loads in flight, by key.
#[derive(Default)]
pub(crate) struct Flights {
    inflight: Mutex<HashMap<String, Shared<BoxFuture<'static, Outcome>>>>,
}

impl Flights {
    /// Runs `load` for `key`, or joins the run already in flight.
    pub async fn run(
        &self,
        key: String,
        load: impl FnOnce() -> BoxFuture<'static, Result<AnyValue>>,
    ) -> Result<AnyValue> {
        let (fut, leader) = {
            let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            match map.get(&key) {
                Some(f) => (f.clone(), false),
                None => {
                    let f = load().map(|r| r.map_err(Arc::new)).boxed().shared();
                    map.insert(key.clone(), f.clone());
                    (f, true)
                }
            }
        };
        let out = fut.await;
        if leader {
            self.inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
        }
        out.map_err(|e| match Arc::try_unwrap(e) {
            Ok(e) => e,
            Err(shared) => CacheError::Unavailable(shared.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_runs_share_one_load() {
        let flights = Arc::new(Flights::default());
        let loads = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (flights, loads, gate) = (flights.clone(), loads.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                flights
                    .run("k".into(), move || {
                        async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            gate.notified().await;
                            Ok(Arc::new(5u8) as AnyValue)
                        }
                        .boxed()
                    })
                    .await
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_waiters();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap().downcast_ref::<u8>(), Some(&5));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }
}
