//! Login rate limiting, per account and per client address.
//!
//! Failed logins are counted in fixed windows: once an account (tenant +
//! e-mail) has `max_failures` failures in the window, or an address has
//! `max_per_address`, further attempts are refused with 429 and
//! `Retry-After` until the window ends, whatever the password. A successful
//! login clears its account's count.
//!
//! The counts are kept in this process: with N instances behind a load
//! balancer an attacker gets at most N times the limit (still bounded, and
//! Argon2 makes each guess expensive). The maps are pruned when they grow,
//! so a flood of distinct names cannot exhaust memory.

use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Entries kept before expired ones are pruned.
const PRUNE_ABOVE: usize = 50_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// The limiter.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    max_failures: u32,
    max_per_address: u32,
    accounts: DashMap<String, Window>,
    addresses: DashMap<String, Window>,
}

impl LoginLimiter {
    /// A limiter allowing `max_failures` per account and `max_per_address`
    /// failures per address in each `window`.
    pub fn new(window: Duration, max_failures: u32, max_per_address: u32) -> Self {
        Self {
            window,
            max_failures: max_failures.max(1),
            max_per_address: max_per_address.max(1),
            accounts: DashMap::new(),
            addresses: DashMap::new(),
        }
    }

    /// The account key: tenant slug and e-mail, case-folded.
    pub fn account_key(tenant: &str, email: &str) -> String {
        format!("{}\u{1f}{}", tenant.to_lowercase(), email.to_lowercase())
    }

    /// `Err(seconds to wait)` when either the account or the address is over
    /// its limit now.
    pub fn check(&self, account: &str, address: &str) -> Result<(), u64> {
        let now = Instant::now();
        let over = |map: &DashMap<String, Window>, key: &str, max: u32| -> Option<u64> {
            let w = *map.get(key)?;
            let elapsed = now.duration_since(w.started);
            (elapsed < self.window && w.failures >= max)
                .then(|| (self.window - elapsed).as_secs().max(1))
        };
        match (
            over(&self.accounts, account, self.max_failures),
            over(&self.addresses, address, self.max_per_address),
        ) {
            (None, None) => Ok(()),
            (a, b) => Err(a.unwrap_or(0).max(b.unwrap_or(0))),
        }
    }

    /// Counts a failed attempt against the account and the address.
    pub fn failed(&self, account: &str, address: &str) {
        let now = Instant::now();
        for (map, key) in [(&self.accounts, account), (&self.addresses, address)] {
            if map.len() > PRUNE_ABOVE {
                map.retain(|_, w| now.duration_since(w.started) < self.window);
            }
            let mut entry = map.entry(key.to_string()).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.duration_since(entry.started) >= self.window {
                *entry = Window {
                    started: now,
                    failures: 0,
                };
            }
            entry.failures = entry.failures.saturating_add(1);
        }
    }

    /// Clears the account's failures after a successful login.
    pub fn succeeded(&self, account: &str) {
        self.accounts.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_accounts_and_addresses_separately() {
        let l = LoginLimiter::new(Duration::from_secs(60), 2, 3);
        let a = LoginLimiter::account_key("Demo", "A@x");
        assert_eq!(a, LoginLimiter::account_key("demo", "a@X"));
        assert!(l.check(&a, "1.1.1.1").is_ok());
        l.failed(&a, "1.1.1.1");
        assert!(l.check(&a, "1.1.1.1").is_ok());
        l.failed(&a, "1.1.1.1");
        let wait = l.check(&a, "2.2.2.2").unwrap_err();
        assert!((1..=60).contains(&wait));
        // Another account from the same address: one more failure allowed.
        let b = LoginLimiter::account_key("demo", "b@x");
        assert!(l.check(&b, "1.1.1.1").is_ok());
        l.failed(&b, "1.1.1.1");
        assert!(l.check(&b, "1.1.1.1").is_err());
        assert!(l.check(&b, "3.3.3.3").is_ok());
        l.succeeded(&a);
        assert!(l.check(&a, "3.3.3.3").is_ok());
    }
}
