//! Session and permission caches for the BISMAN ERP (spec §4, §5, §7).
//!
//! ```text
//!   caller ──► L1 near-cache (per process, moka) ──► L2 shared store ──► PostgreSQL
//!                    ▲                                 (Redis, Redis Cluster,
//!                    └── invalidation bus ◄──────────── permission_cache table,
//!                        (pub/sub, NOTIFY)              in-process memory)
//! ```
//!
//! `REDIS_URL` picks the store ([`CacheMode`]): `redis://` / `rediss://`,
//! `redis+cluster://h:p,h:p` (or a comma list), `memory`, `postgres` (the
//! spec's `permission_cache` table with LISTEN/NOTIFY), or `disabled` (every
//! lookup reads PostgreSQL). [`CacheConfig::from_env`] reads `REDIS_URL` and
//! the `BISMAN_*` cache variables exactly as `bisman serve` does, for other
//! processes that embed the cache (the Node.js package in `bindings/node`).
//!
//! # Consistency
//!
//! PostgreSQL is the truth. A change that narrows access commits there, then
//! calls [`Cache::invalidate`] (or the specific `invalidate_*` methods),
//! which bumps the generation counters of the affected scopes in the shared
//! store (deleting their values), tombstones revoked sessions, publishes on
//! the bus, drops the local near-cache entries, and returns once every other
//! instance acknowledged or one subscription lease passed. Afterwards no
//! instance answers with what was revoked:
//!
//! - shared-store fills are conditional on the generation read before the
//!   PostgreSQL load began, so a slow load cannot re-insert old data;
//! - session fills are set-if-absent, so they cannot overwrite a tombstone;
//! - near-cache entries are served only under the rules of [`near`]
//!   (module docs), including a confirmed subscription;
//! - a store that cannot be reached is skipped (PostgreSQL answers), the
//!   invalidations it missed are journaled in PostgreSQL and replayed by
//!   every instance before it uses the store again;
//! - concurrent misses on one key make one load ([`flight`]);
//! - when nothing can answer, the answer is an error, never a grant.
//!
//! TTLs (the spec's table, [`Ttls`]) are only the safety net.
//!
//! Permission resolution rules: see [`permissions`].

pub mod bus;
mod cache;
pub mod clock;
pub mod config;
mod engine;
pub mod env;
mod error;
mod events;
pub(crate) mod flight;
pub mod ids;
pub mod keys;
pub(crate) mod near;
pub mod permissions;
pub mod session;
pub mod stats;
pub mod store;
mod sync;

pub use cache::{Cache, CacheBuilder, CacheHealth};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{CacheConfig, CacheMode, NearConfig, Ttls};
pub use engine::SourceHook;
pub use env::parse_duration;
pub use error::{CacheError, Result};
pub use events::{InvalidationEvent, InvalidationReport};
pub use ids::{RoleId, SessionToken, SuperAdminId, TenantId, TokenHash, UserId, UserType};
pub use keys::{Namespace, Scope};
pub use permissions::{Action, PermissionCache, Permissions};
pub use session::{IssuedSession, NewSession, Session, SessionCache, SessionInfo};
pub use stats::{Layer, StatsRow};
pub use sync::Delivery;
