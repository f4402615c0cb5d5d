//! The in-process bus (memory mode, and tests of several caches in one
//! process).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::Bus;
use crate::error::Result;

/// An in-process broadcast channel.
#[derive(Debug)]
pub struct LocalBus {
    tx: broadcast::Sender<String>,
    registry: Mutex<HashMap<String, Instant>>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(4096).0,
            registry: Mutex::new(HashMap::new()),
        }
    }
}

impl LocalBus {
    /// A new channel.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, payload: String) -> Result<()> {
        // No receivers is fine: nobody to tell.
        let _ = self.tx.send(payload);
        Ok(())
    }

    async fn subscribe(&self) -> Result<BoxStream<'static, String>> {
        let rx = self.tx.subscribe();
        // A lagging receiver has lost messages: end the stream so that the
        // subscriber treats it as a broken subscription and flushes.
        Ok(futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.ok().map(|m| (m, rx)) },
        )
        .boxed())
    }

    async fn register(&self, instance: &str, ttl: Duration) -> Result<()> {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(instance.to_string(), Instant::now() + ttl);
        Ok(())
    }

    async fn deregister(&self, instance: &str) -> Result<()> {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(instance);
        Ok(())
    }

    async fn instances(&self) -> Result<Vec<String>> {
        let now = Instant::now();
        let mut reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        reg.retain(|_, until| *until > now);
        Ok(reg.keys().cloned().collect())
    }
}
