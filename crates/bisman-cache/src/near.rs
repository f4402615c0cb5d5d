//! The near-cache (L1): values kept in the process in front of the shared
//! store, and the rules that make serving them safe.
//!
//! An entry is served only when all of these hold:
//! - it is younger than the entry TTL (the hard cap on staleness, whatever
//!   else happens);
//! - its scope's local generation has not moved since the load that filled
//!   it began (an invalidation received since then makes it stale, and a
//!   load that raced an invalidation never counts);
//! - it was filled during the current subscription (a broken subscription
//!   may have missed invalidations: everything from before is dropped);
//! - the subscription is confirmed: this instance's own ping, published
//!   less than a lease ago, came back through it, and its registry entry
//!   was refreshed less than a lease ago.
//!
//! Why the lease makes revocation instant: messages on the bus reach each
//! subscriber in one order. If an instance has not yet applied an
//! invalidation, every ping it has received back was published before that
//! invalidation, so it stops serving L1 at most one lease after the
//! invalidation was published. The invalidating call returns when every
//! registered instance acknowledged, or when one lease has passed since it
//! published: either way no instance serves the revoked entry afterwards.
//! An instance stays registered for two leases after its last refresh and
//! serves L1 only within one lease of it, so an instance missing from the
//! registry is not serving L1.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::config::NearConfig;
use crate::keys::Scope;

/// A type-erased cached value.
pub(crate) type AnyValue = Arc<dyn Any + Send + Sync>;

#[derive(Clone)]
struct Entry {
    value: AnyValue,
    scope: Scope,
    generation: u64,
    epoch: u64,
}

/// What a load must remember to fill L1 safely afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Snapshot {
    /// The scope's local generation (0 when the scope is not known yet).
    pub generation: u64,
    /// The subscription epoch.
    pub epoch: u64,
    /// Session invalidations seen (for session loads, whose user is unknown
    /// until loaded).
    pub sessions: u64,
}

/// Liveness of the invalidation subscription.
#[derive(Debug)]
pub(crate) struct Health {
    origin: Instant,
    subscribed: AtomicBool,
    /// Milliseconds after `origin` at which the latest confirmed ping was sent (+1; 0 = never).
    confirmed: AtomicU64,
    /// Milliseconds after `origin` of the latest registry refresh (+1; 0 = never).
    registered: AtomicU64,
    lease: Duration,
}

impl Health {
    fn new(lease: Duration) -> Self {
        Self {
            origin: Instant::now(),
            subscribed: AtomicBool::new(false),
            confirmed: AtomicU64::new(0),
            registered: AtomicU64::new(0),
            lease,
        }
    }

    fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_millis()).unwrap_or(u64::MAX - 1)
            + 1
    }

    fn fresh(&self, stamp: u64) -> bool {
        stamp != 0
            && self.stamp(Instant::now()).saturating_sub(stamp) < self.lease.as_millis() as u64
    }

    /// Whether L1 may be used now.
    pub fn usable(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
            && self.fresh(self.confirmed.load(Ordering::Acquire))
            && self.fresh(self.registered.load(Ordering::Acquire))
    }

    /// A ping sent at `sent` came back.
    pub fn confirm(&self, sent: Instant) {
        self.confirmed.fetch_max(self.stamp(sent), Ordering::AcqRel);
    }

    /// The registry entry was refreshed; `attempted` is when the refresh started.
    pub fn registered(&self, attempted: Instant) {
        self.registered
            .fetch_max(self.stamp(attempted), Ordering::AcqRel);
    }
}

/// The near-cache.
pub(crate) struct Near {
    entries: moka::sync::Cache<String, Entry>,
    generations: DashMap<Scope, u64>,
    epoch: AtomicU64,
    sessions: AtomicU64,
    pub health: Health,
    config: NearConfig,
}

impl Near {
    pub fn new(config: NearConfig) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(config.capacity)
                .time_to_live(config.entry_ttl)
                .build(),
            generations: DashMap::new(),
            epoch: AtomicU64::new(0),
            sessions: AtomicU64::new(0),
            health: Health::new(config.subscription_lease),
            config,
        }
    }

    /// The longest an entry can live.
    pub fn entry_ttl(&self) -> Duration {
        self.config.entry_ttl
    }

    fn generation(&self, scope: Scope) -> u64 {
        self.generations.get(&scope).map_or(0, |g| *g)
    }

    /// What a load of `scope` (if known) starts from.
    pub fn snapshot(&self, scope: Option<Scope>) -> Snapshot {
        Snapshot {
            epoch: self.epoch.load(Ordering::Acquire),
            sessions: self.sessions.load(Ordering::Acquire),
            generation: scope.map_or(0, |s| self.generation(s)),
        }
    }

    /// A usable entry at `key`, if any.
    pub fn get(&self, key: &str) -> Option<AnyValue> {
        if !self.health.usable() {
            return None;
        }
        let e = self.entries.get(key)?;
        if e.epoch == self.epoch.load(Ordering::Acquire) && e.generation == self.generation(e.scope)
        {
            Some(e.value)
        } else {
            self.entries.invalidate(key);
            None
        }
    }

    /// Stores a value loaded from `snap` under `scope`, unless anything that
    /// could make it stale happened since; whether it stored.
    pub fn insert(
        &self,
        key: String,
        value: AnyValue,
        scope: Scope,
        snap: Snapshot,
        scope_known_at_start: bool,
    ) -> bool {
        if !self.health.usable() || self.epoch.load(Ordering::Acquire) != snap.epoch {
            return false;
        }
        if scope_known_at_start {
            if self.generation(scope) != snap.generation {
                return false;
            }
        } else if self.sessions.load(Ordering::Acquire) != snap.sessions {
            // A session load learnt its user only now: any session
            // invalidation during the load may have concerned it.
            return false;
        }
        let generation = self.generation(scope);
        self.entries.insert(
            key,
            Entry {
                value,
                scope,
                generation,
                epoch: snap.epoch,
            },
        );
        true
    }

    /// Applies an invalidation: entries of these scopes are stale from now on.
    pub fn apply(&self, scopes: &[Scope]) {
        for scope in scopes {
            *self.generations.entry(*scope).or_insert(0) += 1;
            if matches!(scope, Scope::UserSessions(_)) {
                self.sessions.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// Forgets everything (the subscription broke or was re-established).
    pub fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    /// Marks the subscription up or down.
    pub fn set_subscribed(&self, up: bool) {
        self.flush();
        self.health.subscribed.store(up, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;

    fn near() -> Near {
        let n = Near::new(NearConfig::default());
        n.set_subscribed(true);
        n.health.confirm(Instant::now());
        n.health.registered(Instant::now());
        n
    }

    fn value(v: u32) -> AnyValue {
        Arc::new(v)
    }

    #[tokio::test]
    async fn serves_until_its_scope_is_invalidated() {
        let n = near();
        let s = Scope::User(UserId(1));
        let snap = n.snapshot(Some(s));
        assert!(n.insert("k".into(), value(7), s, snap, true));
        assert_eq!(n.get("k").unwrap().downcast_ref::<u32>(), Some(&7));
        n.apply(&[Scope::User(UserId(2))]);
        assert!(n.get("k").is_some(), "another user's invalidation");
        n.apply(&[s]);
        assert!(n.get("k").is_none());
    }

    #[tokio::test]
    async fn a_load_that_raced_an_invalidation_is_not_stored() {
        let n = near();
        let s = Scope::User(UserId(1));
        let snap = n.snapshot(Some(s));
        n.apply(&[s]);
        assert!(!n.insert("k".into(), value(7), s, snap, true));
        // Sessions: the user is learnt after the load.
        let snap = n.snapshot(None);
        n.apply(&[Scope::UserSessions(UserId(9))]);
        assert!(!n.insert(
            "s".into(),
            value(1),
            Scope::UserSessions(UserId(3)),
            snap,
            false
        ));
    }

    #[tokio::test]
    async fn nothing_is_served_without_a_confirmed_subscription() {
        let n = near();
        let s = Scope::User(UserId(1));
        assert!(n.insert("k".into(), value(7), s, n.snapshot(Some(s)), true));
        n.set_subscribed(false);
        assert!(n.get("k").is_none());
        n.set_subscribed(true);
        assert!(n.get("k").is_none(), "entries from before a break are gone");
    }

    #[tokio::test(start_paused = true)]
    async fn the_lease_runs_out_without_pings() {
        let n = near();
        let s = Scope::User(UserId(1));
        assert!(n.insert("k".into(), value(7), s, n.snapshot(Some(s)), true));
        tokio::time::advance(Duration::from_millis(1600)).await;
        assert!(!n.health.usable());
        assert!(n.get("k").is_none());
    }
}
