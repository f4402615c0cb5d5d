//! tower-sessions' Redis store: `SessionStore::load` of records the size of
//! our sessions.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};
use tower_sessions_core::session::{Id, Record};
use tower_sessions_core::SessionStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::RedisStore;

use crate::error::{BenchError, Result};
use crate::measure::{probe, Probe};

fn peer(e: impl std::fmt::Display) -> BenchError {
    BenchError::Peer {
        peer: "tower-sessions",
        message: e.to_string(),
    }
}

fn record(k: usize) -> Record {
    let now = OffsetDateTime::now_utc();
    let mut data = HashMap::new();
    for (key, value) in [
        ("session_id", serde_json::json!(k)),
        ("tenant_id", serde_json::json!(uuid::Uuid::new_v4())),
        ("user_id", serde_json::json!(k as i32 + 1)),
        ("user_type", serde_json::json!("STAFF")),
        ("created_at", serde_json::json!(now.unix_timestamp())),
        (
            "expires_at",
            serde_json::json!(now.unix_timestamp() + 7 * 86_400),
        ),
        ("last_seen_at", serde_json::json!(now.unix_timestamp())),
    ] {
        data.insert(key.to_string(), value);
    }
    Record {
        id: Id::default(),
        data,
        expiry_date: now + Duration::hours(1),
    }
}

/// The store with `n` records in it.
pub(super) struct TowerPeer {
    pool: Pool,
    store: RedisStore<Pool>,
    ids: Vec<Id>,
}

impl TowerPeer {
    /// Connects (one fred connection) and stores `n` records.
    pub(super) async fn set_up(url: &str, n: usize) -> Result<Self> {
        let pool =
            Pool::new(Config::from_url(url).map_err(peer)?, None, None, None, 1).map_err(peer)?;
        pool.init().await.map_err(peer)?;
        let store = RedisStore::new(pool.clone());
        let mut ids = Vec::with_capacity(n);
        for k in 0..n.max(1) {
            let mut r = record(k);
            store.create(&mut r).await.map_err(peer)?;
            ids.push(r.id);
        }
        Ok(TowerPeer { pool, store, ids })
    }

    /// `load`, rotating through the records.
    pub(super) fn probe(&self) -> Probe<'_> {
        probe(move |i| {
            let id = &self.ids[i % self.ids.len()];
            async move {
                match self.store.load(id).await.map_err(peer)? {
                    Some(_) => Ok(()),
                    None => Err(peer("a stored session vanished")),
                }
            }
        })
    }

    /// What its row should say.
    pub(super) fn note(&self) -> String {
        format!(
            "{} records in rotation, MessagePack-encoded, one fred connection",
            self.ids.len()
        )
    }

    /// Deletes the records (their keys are bare session ids) and disconnects.
    pub(super) async fn tear_down(self) {
        for id in &self.ids {
            let _ = self.store.delete(id).await;
        }
        let _ = self.pool.quit().await;
    }
}
