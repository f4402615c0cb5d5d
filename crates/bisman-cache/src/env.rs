//! The cache's configuration from environment variables: the names, syntax
//! and defaults `bisman serve` uses (its flags fall back to these variables),
//! for every other process that embeds the cache, such as the Node.js package.
//! One reader, so that a Node.js backend and the service next to it, given
//! the same environment, share the same store, prefix and TTLs.

use std::time::Duration;

use crate::config::{CacheConfig, CacheMode};
use crate::error::{CacheError, Result};

/// The variables [`CacheConfig::from_vars`] reads, in the README's order.
pub const VARIABLES: [&str; 13] = [
    "REDIS_URL",
    "BISMAN_CACHE_PREFIX",
    "BISMAN_SESSION_TTL",
    "BISMAN_REFRESH_TTL",
    "BISMAN_SESSION_MAX_LIFETIME",
    "BISMAN_PERMISSIONS_TTL",
    "BISMAN_ROLE_PERMISSIONS_TTL",
    "BISMAN_MODULE_ASSIGNMENTS_TTL",
    "BISMAN_NEAR_CACHE",
    "BISMAN_NEAR_CACHE_CAPACITY",
    "BISMAN_NEAR_CACHE_TTL",
    "BISMAN_NEAR_CACHE_LEASE",
    "BISMAN_CACHE_TIMEOUT",
];

/// Parses `500ms`, `30s`, `5m`, `6h`, `1d` or a number of seconds (at most
/// a year).
pub fn parse_duration(raw: &str) -> std::result::Result<Duration, String> {
    let s = raw.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 500ms, 30s, 5m, 6h or 1d"))?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(format!("{raw:?}: unknown unit (use ms, s, m, h or d)")),
    };
    let ms = n
        .checked_mul(unit_ms)
        .filter(|ms| *ms <= 366 * 86_400_000)
        .ok_or_else(|| format!("{raw:?} is longer than a year"))?;
    Ok(Duration::from_millis(ms))
}

/// Parses `true` or `false` (what `bisman serve`'s boolean flags accept).
pub fn parse_bool(raw: &str) -> std::result::Result<bool, String> {
    match raw.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{raw:?} is neither true nor false")),
    }
}

impl CacheConfig {
    /// The configuration `lookup` describes: each variable of [`VARIABLES`]
    /// that it returns overrides the default, exactly as `bisman serve` reads it. Empty values count as
    /// unset. The result is validated.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<CacheConfig> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let bad = |name: &str, why: String| CacheError::Config(format!("{name}: {why}"));
        let duration = |name: &str, into: &mut Duration| -> Result<()> {
            if let Some(v) = get(name) {
                *into = parse_duration(&v).map_err(|e| bad(name, e))?;
            }
            Ok(())
        };
        let mut c = CacheConfig {
            mode: CacheMode::parse(get("REDIS_URL").as_deref())?,
            ..CacheConfig::default()
        };
        if let Some(prefix) = get("BISMAN_CACHE_PREFIX") {
            c.prefix = prefix;
        }
        duration("BISMAN_SESSION_TTL", &mut c.ttls.sessions)?;
        duration("BISMAN_REFRESH_TTL", &mut c.ttls.refresh_tokens)?;
        duration("BISMAN_SESSION_MAX_LIFETIME", &mut c.session_max_lifetime)?;
        duration("BISMAN_PERMISSIONS_TTL", &mut c.ttls.user_permissions)?;
        duration("BISMAN_ROLE_PERMISSIONS_TTL", &mut c.ttls.role_permissions)?;
        duration(
            "BISMAN_MODULE_ASSIGNMENTS_TTL",
            &mut c.ttls.module_assignments,
        )?;
        if let Some(v) = get("BISMAN_NEAR_CACHE") {
            c.near.enabled = parse_bool(&v).map_err(|e| bad("BISMAN_NEAR_CACHE", e))?;
        }
        if let Some(v) = get("BISMAN_NEAR_CACHE_CAPACITY") {
            c.near.capacity = v.trim().parse().map_err(|_| {
                bad(
                    "BISMAN_NEAR_CACHE_CAPACITY",
                    format!("{v:?} is not a number of entries"),
                )
            })?;
        }
        duration("BISMAN_NEAR_CACHE_TTL", &mut c.near.entry_ttl)?;
        duration("BISMAN_NEAR_CACHE_LEASE", &mut c.near.subscription_lease)?;
        duration("BISMAN_CACHE_TIMEOUT", &mut c.store_timeout)?;
        c.validate()?;
        Ok(c)
    }

    /// [`CacheConfig::from_vars`] over this process's environment.
    pub fn from_env() -> Result<CacheConfig> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<CacheConfig> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CacheConfig::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn nothing_set_is_the_default() {
        assert_eq!(from(&[]).unwrap(), CacheConfig::default());
        assert_eq!(
            from(&[("REDIS_URL", "  ")]).unwrap(),
            CacheConfig::default()
        );
    }

    #[test]
    fn every_variable_is_read() {
        let c = from(&[
            ("REDIS_URL", "redis://127.0.0.1:6390"),
            ("BISMAN_CACHE_PREFIX", "erp:"),
            ("BISMAN_SESSION_TTL", "2h"),
            ("BISMAN_REFRESH_TTL", "3d"),
            ("BISMAN_SESSION_MAX_LIFETIME", "4d"),
            ("BISMAN_PERMISSIONS_TTL", "1m"),
            ("BISMAN_ROLE_PERMISSIONS_TTL", "2m"),
            ("BISMAN_MODULE_ASSIGNMENTS_TTL", "3m"),
            ("BISMAN_NEAR_CACHE", "false"),
            ("BISMAN_NEAR_CACHE_CAPACITY", "77"),
            ("BISMAN_NEAR_CACHE_TTL", "5s"),
            ("BISMAN_NEAR_CACHE_LEASE", "900ms"),
            ("BISMAN_CACHE_TIMEOUT", "250ms"),
        ])
        .unwrap();
        assert_eq!(c.mode.label(), "redis");
        assert_eq!(c.prefix, "erp:");
        assert_eq!(c.ttls.sessions, Duration::from_secs(7200));
        assert_eq!(c.ttls.refresh_tokens, Duration::from_secs(3 * 86400));
        assert_eq!(c.session_max_lifetime, Duration::from_secs(4 * 86400));
        assert_eq!(c.ttls.user_permissions, Duration::from_secs(60));
        assert_eq!(c.ttls.role_permissions, Duration::from_secs(120));
        assert_eq!(c.ttls.module_assignments, Duration::from_secs(180));
        assert!(!c.near.enabled);
        assert_eq!(c.near.capacity, 77);
        assert_eq!(c.near.entry_ttl, Duration::from_secs(5));
        assert_eq!(c.near.subscription_lease, Duration::from_millis(900));
        assert_eq!(c.store_timeout, Duration::from_millis(250));
    }

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        for (k, v, says) in [
            ("BISMAN_SESSION_TTL", "soon", "BISMAN_SESSION_TTL"),
            ("BISMAN_NEAR_CACHE", "yes", "BISMAN_NEAR_CACHE"),
            (
                "BISMAN_NEAR_CACHE_CAPACITY",
                "-1",
                "BISMAN_NEAR_CACHE_CAPACITY",
            ),
            ("BISMAN_PERMISSIONS_TTL", "0s", "every TTL"),
            ("BISMAN_CACHE_PREFIX", "has space", "key prefix"),
            ("REDIS_URL", "http://x", "REDIS_URL"),
        ] {
            let e = from(&[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(says), "{k}={v}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(6 * 3600));
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86400));
        for bad in ["", "x", "5w", "-1s", "99999999999999999999d", "400d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
