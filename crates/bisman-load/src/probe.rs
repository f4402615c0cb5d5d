//! The revocation model: what the probed permission is at each moment, as
//! far as acknowledged changes say, and the verdict on each check of it.
//!
//! A check that began after a revocation was acknowledged, and whose answer
//! arrived while no grant had begun since, must say "denied"; "allowed" is
//! a violation. A change that failed (5xx, no answer) may or may not have
//! committed: until the next acknowledged change nothing is judged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
enum State {
    Granted(Instant),
    Revoked(Instant),
    Changing,
    Unknown,
}

/// Counters of the prober and the verdicts.
#[derive(Debug)]
pub struct Model {
    state: Mutex<State>,
    /// Acknowledged revocations.
    pub revokes: AtomicU64,
    /// Acknowledged grants.
    pub grants: AtomicU64,
    /// Changes that failed (outcome unknown).
    pub failed_changes: AtomicU64,
    /// Checks judged while revoked.
    pub judged: AtomicU64,
    /// Checks that said "allowed" after an acknowledged revocation.
    pub violations: AtomicU64,
    /// Checks that said "denied" after an acknowledged grant.
    pub stale_denials: AtomicU64,
}

impl Default for Model {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::Unknown),
            revokes: AtomicU64::new(0),
            grants: AtomicU64::new(0),
            failed_changes: AtomicU64::new(0),
            judged: AtomicU64::new(0),
            violations: AtomicU64::new(0),
            stale_denials: AtomicU64::new(0),
        }
    }
}

impl Model {
    fn set(&self, s: State) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    /// A change is about to be sent.
    pub fn changing(&self) {
        self.set(State::Changing);
    }

    /// A revocation was acknowledged.
    pub fn revoked(&self) {
        self.set(State::Revoked(Instant::now()));
        self.revokes.fetch_add(1, Ordering::Relaxed);
    }

    /// A grant was acknowledged.
    pub fn granted(&self) {
        self.set(State::Granted(Instant::now()));
        self.grants.fetch_add(1, Ordering::Relaxed);
    }

    /// A change failed: its outcome is unknown.
    pub fn failed(&self) {
        self.set(State::Unknown);
        self.failed_changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Judges a check that began at `started` and answered `allowed`.
    pub fn judge(&self, started: Instant, allowed: bool) {
        let state = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state {
            State::Revoked(since) if started >= since => {
                self.judged.fetch_add(1, Ordering::Relaxed);
                if allowed {
                    self.violations.fetch_add(1, Ordering::Relaxed);
                    tracing::error!("a revoked permission was granted");
                }
            }
            State::Granted(since) if started >= since && !allowed => {
                self.stale_denials.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_only_checks_that_began_after_the_acknowledgement() {
        let m = Model::default();
        let before = Instant::now();
        m.judge(before, true);
        m.changing();
        m.revoked();
        m.judge(before, true); // began before the revocation returned
        assert_eq!(m.violations.load(Ordering::Relaxed), 0);
        m.judge(Instant::now(), false);
        m.judge(Instant::now(), true);
        assert_eq!(m.violations.load(Ordering::Relaxed), 1);
        assert_eq!(m.judged.load(Ordering::Relaxed), 2);
        m.changing();
        m.judge(Instant::now(), true); // a grant is in flight
        m.failed();
        m.judge(Instant::now(), true); // unknown
        assert_eq!(m.violations.load(Ordering::Relaxed), 1);
        m.granted();
        m.judge(Instant::now(), false);
        assert_eq!(m.stale_denials.load(Ordering::Relaxed), 1);
    }
}
