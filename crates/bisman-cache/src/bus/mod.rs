//! The invalidation bus: how instances tell each other to drop near-cache
//! entries, confirm their subscription is alive, and acknowledge.
//!
//! Every message of one deployment travels through one ordered channel
//! (a single Redis node's pub/sub, PostgreSQL's NOTIFY, or an in-process
//! broadcast). Order is what makes the near-cache lease sound: when an
//! instance receives its own ping back, it has received every invalidation
//! published before that ping (see `crate::near`).

mod local;
mod postgres;
mod redis;

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::keys::Scope;

pub use self::local::LocalBus;
pub use self::postgres::PostgresBus;
pub use self::redis::RedisBus;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "snake_case")]
pub enum BusMessage {
    /// Drop what these scopes and sessions cached.
    Invalidate {
        /// Identifies the invalidation for its acknowledgements.
        id: uuid::Uuid,
        /// The instance that sent it.
        from: String,
        /// Scopes whose cached values are stale.
        scopes: Vec<Scope>,
        /// Token hashes (hex) of sessions whose cached copies are stale.
        sessions: Vec<String>,
    },
    /// An instance checking that its subscription delivers.
    Ping {
        /// The instance that sent it.
        from: String,
        /// Its sequence number.
        seq: u64,
    },
    /// An instance has applied an invalidation.
    Ack {
        /// The invalidation.
        id: uuid::Uuid,
        /// The instance acknowledging.
        from: String,
    },
}

impl BusMessage {
    /// JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("bus messages serialise")
    }

    /// Parses JSON text; `None` for anything else (a foreign publisher).
    pub fn decode(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A publish/subscribe channel with a registry of live instances.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes one message.
    async fn publish(&self, payload: String) -> Result<()>;

    /// A new subscription. The stream ends when the subscription breaks;
    /// the caller subscribes again.
    async fn subscribe(&self) -> Result<BoxStream<'static, String>>;

    /// Records `instance` as live for `ttl`.
    async fn register(&self, instance: &str, ttl: Duration) -> Result<()>;

    /// Removes `instance` from the registry (clean shutdown).
    async fn deregister(&self, instance: &str) -> Result<()>;

    /// The instances recorded as live.
    async fn instances(&self) -> Result<Vec<String>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    #[test]
    fn messages_round_trip() {
        let m = BusMessage::Invalidate {
            id: uuid::Uuid::nil(),
            from: "a".into(),
            scopes: vec![Scope::User(UserId(3))],
            sessions: vec![],
        };
        assert_eq!(BusMessage::decode(&m.encode()), Some(m));
        assert_eq!(BusMessage::decode("not json"), None);
    }
}
