//! The process's one cache: configured once, opened on first use, closed by
//! `close()`.
//!
//! ```text
//!   Idle ──first use──► Opening ──► Open ──close()──► Closed
//!    ▲  configure()        │ fails: back to Idle          │
//!    └─────────────────────┴──────── configure() ◄────────┘
//! ```
//!
//! Concurrent first calls share one opening. The open instance is also kept
//! behind a read lock of its own so that every call after the first finds
//! it without touching the state machine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use bisman_cache::Cache;
use futures::future::{BoxFuture, FutureExt, Shared};
use serde_json::{Map, Value};
use sqlx::PgPool;

use crate::failure::{Code, Failure};
use crate::settings::Settings;

/// An open cache and its pool.
pub struct Instance {
    /// The cache (sessions, permissions, invalidation).
    pub cache: Cache,
    pool: PgPool,
}

type Opening = Shared<BoxFuture<'static, Result<Arc<Instance>, Failure>>>;

enum Phase {
    Idle,
    Opening(Opening),
    Open(Arc<Instance>),
    Closed,
}

struct Slot {
    /// The environment variables' values, handed over on first use.
    env: Option<HashMap<String, String>>,
    /// What `configure` set (checked when it was called).
    configured: Option<Settings>,
    phase: Phase,
}

static SLOT: Mutex<Slot> = Mutex::new(Slot {
    env: None,
    configured: None,
    phase: Phase::Idle,
});

/// The open instance, for the fast path.
static OPEN: RwLock<Option<Arc<Instance>>> = RwLock::new(None);

fn slot() -> std::sync::MutexGuard<'static, Slot> {
    SLOT.lock().unwrap_or_else(|p| p.into_inner())
}

fn publish(instance: Option<Arc<Instance>>) {
    *OPEN.write().unwrap_or_else(|p| p.into_inner()) = instance;
}

/// Records the environment variables' values, unless already recorded.
pub fn provide_environment(env: HashMap<String, String>) {
    let mut s = slot();
    if s.env.is_none() {
        s.env = Some(env);
    }
}

/// `configure(options)`: checks and keeps `options` (over `env`) for the
/// next opening. Refused once the cache was used, until `close()`.
pub fn configure(
    options: &Map<String, Value>,
    env: HashMap<String, String>,
) -> Result<(), Failure> {
    let mut s = slot();
    match s.phase {
        Phase::Opening(_) | Phase::Open(_) => {
            return Err(Failure::new(
                Code::AlreadyConfigured,
                "configure() must come before the first use of the cache (or after close())",
            ))
        }
        Phase::Idle | Phase::Closed => {}
    }
    let settings = Settings::resolve(options, &env)?;
    s.env = Some(env);
    s.configured = Some(settings);
    s.phase = Phase::Idle;
    Ok(())
}

/// The open instance, opening it on first use.
pub async fn current() -> Result<Arc<Instance>, Failure> {
    if let Some(i) = OPEN.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return Ok(i.clone());
    }
    let opening = {
        let mut s = slot();
        match &s.phase {
            Phase::Open(i) => return Ok(i.clone()),
            Phase::Closed => {
                return Err(Failure::new(
                    Code::Closed,
                    "the cache was closed; configure() opens it again",
                ))
            }
            Phase::Opening(o) => o.clone(),
            Phase::Idle => {
                let settings = match &s.configured {
                    Some(c) => c.clone(),
                    None => {
                        Settings::resolve(&Map::new(), s.env.as_ref().unwrap_or(&HashMap::new()))?
                    }
                };
                let o = open(settings).boxed().shared();
                s.phase = Phase::Opening(o.clone());
                o
            }
        }
    };
    let out = opening.clone().await;
    let mut s = slot();
    let still_ours = matches!(&s.phase, Phase::Opening(o) if o.ptr_eq(&opening));
    match (&out, still_ours) {
        (Ok(i), true) => {
            s.phase = Phase::Open(i.clone());
            publish(Some(i.clone()));
        }
        // The next call tries again (PostgreSQL may be back by then).
        (Err(_), true) => s.phase = Phase::Idle,
        (_, false) => {
            if let Phase::Open(i) = &s.phase {
                return Ok(i.clone());
            }
            // Closed while opening: `close()` shuts that instance down.
            return Err(Failure::new(
                Code::Closed,
                "the cache was closed; configure() opens it again",
            ));
        }
    }
    out
}

async fn open(settings: Settings) -> Result<Arc<Instance>, Failure> {
    let pool = bisman_db::connect(&settings.database_url, settings.pool_size)
        .await
        .map_err(|e| {
            Failure::new(
                Code::CacheUnavailable,
                format!("cannot connect to PostgreSQL (DATABASE_URL): {e}"),
            )
        })?;
    let cache = Cache::new(settings.cache, pool.clone()).await?;
    Ok(Arc::new(Instance { cache, pool }))
}

/// `close()`: leaves the invalidation bus and closes the pool. Calls made
/// afterwards fail with `CACHE_CLOSED` until `configure()`.
pub async fn close() {
    let closing = {
        let mut s = slot();
        let previous = std::mem::replace(&mut s.phase, Phase::Closed);
        s.configured = None;
        publish(None);
        previous
    };
    let instance = match closing {
        Phase::Open(i) => Some(i),
        Phase::Opening(o) => o.await.ok(),
        Phase::Idle | Phase::Closed => None,
    };
    if let Some(i) = instance {
        i.cache.shutdown().await;
        i.pool.close().await;
    }
}
