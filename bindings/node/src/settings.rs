//! What the package is configured with: `configure({...})` options over the
//! environment variables `bisman serve` reads, through the cache's own
//! reader (`CacheConfig::from_vars`), so both read them alike.

use std::collections::HashMap;

use bisman_cache::CacheConfig;
use serde_json::{Map, Value};

use crate::failure::{Code, Failure};

/// How an option's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string.
    Text,
    /// A non-negative integer (a number, or a string of digits).
    Count,
    /// A duration: milliseconds as a number, or the variables' syntax (`5m`).
    Duration,
    /// `true` or `false`.
    Flag,
}

/// Each option of `configure({...})`, the variable it stands for, and its kind.
const OPTIONS: &[(&str, &str, Kind)] = &[
    ("databaseUrl", "DATABASE_URL", Kind::Text),
    ("dbPoolSize", "BISMAN_DB_POOL_SIZE", Kind::Count),
    ("redisUrl", "REDIS_URL", Kind::Text),
    ("cachePrefix", "BISMAN_CACHE_PREFIX", Kind::Text),
    ("sessionTtl", "BISMAN_SESSION_TTL", Kind::Duration),
    ("refreshTtl", "BISMAN_REFRESH_TTL", Kind::Duration),
    (
        "sessionMaxLifetime",
        "BISMAN_SESSION_MAX_LIFETIME",
        Kind::Duration,
    ),
    ("permissionsTtl", "BISMAN_PERMISSIONS_TTL", Kind::Duration),
    (
        "rolePermissionsTtl",
        "BISMAN_ROLE_PERMISSIONS_TTL",
        Kind::Duration,
    ),
    (
        "moduleAssignmentsTtl",
        "BISMAN_MODULE_ASSIGNMENTS_TTL",
        Kind::Duration,
    ),
    ("nearCache", "BISMAN_NEAR_CACHE", Kind::Flag),
    (
        "nearCacheCapacity",
        "BISMAN_NEAR_CACHE_CAPACITY",
        Kind::Count,
    ),
    ("nearCacheTtl", "BISMAN_NEAR_CACHE_TTL", Kind::Duration),
    ("nearCacheLease", "BISMAN_NEAR_CACHE_LEASE", Kind::Duration),
    ("cacheTimeout", "BISMAN_CACHE_TIMEOUT", Kind::Duration),
];

/// The pool size `bisman serve` uses by default.
const DEFAULT_POOL_SIZE: u32 = 16;

/// Every environment variable the package reads (the JavaScript side hands
/// their values over on first use).
pub fn variables() -> Vec<&'static str> {
    OPTIONS.iter().map(|(_, var, _)| *var).collect()
}

/// A resolved configuration.
#[derive(Clone)]
pub struct Settings {
    /// PostgreSQL (may hold a password: never shown).
    pub database_url: String,
    /// Connections in the pool.
    pub pool_size: u32,
    /// The cache.
    pub cache: CacheConfig,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("pool_size", &self.pool_size)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// `options` (from `configure`) over `env` (the variables' values).
    pub fn resolve(
        options: &Map<String, Value>,
        env: &HashMap<String, String>,
    ) -> Result<Settings, Failure> {
        let mut vars: HashMap<&'static str, String> = HashMap::new();
        for (_, var, _) in OPTIONS {
            if let Some(v) = env.get(*var) {
                vars.insert(var, v.clone());
            }
        }
        for (name, value) in options {
            let Some((_, var, kind)) = OPTIONS.iter().find(|(o, _, _)| o == name) else {
                let known: Vec<&str> = OPTIONS.iter().map(|(o, _, _)| *o).collect();
                return Err(Failure::invalid(format!(
                    "unknown option `{name}`; the options are {}",
                    known.join(", ")
                )));
            };
            if let Some(text) = option_text(name, value, *kind)? {
                vars.insert(var, text);
            }
        }
        let get = |var: &str| vars.get(var).filter(|v| !v.trim().is_empty()).cloned();
        let database_url = get("DATABASE_URL").ok_or_else(|| {
            Failure::new(
                Code::ConfigInvalid,
                "DATABASE_URL is not set: pass configure({ databaseUrl }) or set the variable to the ERP's PostgreSQL",
            )
        })?;
        let pool_size = match get("BISMAN_DB_POOL_SIZE") {
            None => DEFAULT_POOL_SIZE,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    Failure::new(
                        Code::ConfigInvalid,
                        format!(
                            "BISMAN_DB_POOL_SIZE (dbPoolSize) must be from 1 to 1000, got {v:?}"
                        ),
                    )
                })?,
        };
        let cache = CacheConfig::from_vars(get).map_err(|e| {
            Failure::new(
                Code::ConfigInvalid,
                format!("{e} (see the options table of the package README)"),
            )
        })?;
        Ok(Settings {
            database_url,
            pool_size,
            cache,
        })
    }
}

/// An option's value written as its variable would be; `None` for
/// `undefined`/`null` (not set).
fn option_text(name: &str, value: &Value, kind: Kind) -> Result<Option<String>, Failure> {
    let wrong = |what: &str| Failure::invalid(format!("option `{name}` must be {what}"));
    Ok(Some(match (kind, value) {
        (_, Value::Null) => return Ok(None),
        (Kind::Text, Value::String(s)) if s.len() <= crate::args::MAX_STRING => s.clone(),
        (Kind::Text, _) => return Err(wrong("a string")),
        (Kind::Count, Value::Number(n)) => match n.as_u64() {
            Some(n) => n.to_string(),
            None => return Err(wrong("a whole number")),
        },
        (Kind::Count, Value::String(s)) if s.len() <= 32 => s.clone(),
        (Kind::Count, _) => return Err(wrong("a whole number")),
        (Kind::Duration, Value::Number(n)) => match n.as_u64() {
            Some(ms) => format!("{ms}ms"),
            None => {
                return Err(wrong(
                    "a duration: whole milliseconds, or a string like '5m'",
                ))
            }
        },
        (Kind::Duration, Value::String(s)) if s.len() <= 32 => s.clone(),
        (Kind::Duration, _) => {
            return Err(wrong(
                "a duration: whole milliseconds, or a string like '5m'",
            ))
        }
        (Kind::Flag, Value::Bool(b)) => b.to_string(),
        (Kind::Flag, Value::String(s)) if s == "true" || s == "false" => s.clone(),
        (Kind::Flag, _) => return Err(wrong("true or false")),
    }))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn opts(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_environment_alone_configures() {
        let s = Settings::resolve(
            &Map::new(),
            &env(&[
                ("DATABASE_URL", "postgres://db/erp"),
                ("REDIS_URL", "memory"),
                ("BISMAN_PERMISSIONS_TTL", "2m"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database_url, "postgres://db/erp");
        assert_eq!(s.pool_size, 16);
        assert_eq!(s.cache.ttls.user_permissions, Duration::from_secs(120));
        assert!(!format!("{s:?}").contains("postgres://"));
    }

    #[test]
    fn options_win_over_the_environment() {
        let s = Settings::resolve(
            &opts(json!({
                "databaseUrl": "postgres://db/other",
                "permissionsTtl": 1500,
                "sessionTtl": "30m",
                "nearCache": false,
                "dbPoolSize": 3,
                "cachePrefix": null,
            })),
            &env(&[
                ("DATABASE_URL", "postgres://db/erp"),
                ("BISMAN_PERMISSIONS_TTL", "2m"),
                ("BISMAN_CACHE_PREFIX", "erp:"),
            ]),
        )
        .unwrap();
        assert_eq!(s.database_url, "postgres://db/other");
        assert_eq!(s.cache.ttls.user_permissions, Duration::from_millis(1500));
        assert_eq!(s.cache.ttls.sessions, Duration::from_secs(1800));
        assert!(!s.cache.near.enabled);
        assert_eq!(s.pool_size, 3);
        assert_eq!(s.cache.prefix, "erp:", "null leaves the variable's value");
    }

    #[test]
    fn mistakes_are_named() {
        let db = env(&[("DATABASE_URL", "postgres://db/erp")]);
        let cases = [
            (
                json!({"permisionsTtl": 1}),
                Code::InvalidArgument,
                "permisionsTtl",
            ),
            (
                json!({"sessionTtl": -5}),
                Code::InvalidArgument,
                "sessionTtl",
            ),
            (
                json!({"sessionTtl": 1.5}),
                Code::InvalidArgument,
                "sessionTtl",
            ),
            (
                json!({"nearCache": "yes"}),
                Code::InvalidArgument,
                "nearCache",
            ),
            (json!({"redisUrl": 6379}), Code::InvalidArgument, "redisUrl"),
            (
                json!({"redisUrl": "http://x"}),
                Code::ConfigInvalid,
                "REDIS_URL",
            ),
            (
                json!({"sessionTtl": "soon"}),
                Code::ConfigInvalid,
                "BISMAN_SESSION_TTL",
            ),
            (json!({"dbPoolSize": 0}), Code::ConfigInvalid, "dbPoolSize"),
        ];
        for (o, code, says) in cases {
            let f = Settings::resolve(&opts(o.clone()), &db).unwrap_err();
            assert_eq!(f.code, code, "{o}");
            assert!(f.message.contains(says), "{o}: {}", f.message);
        }
        let f = Settings::resolve(&Map::new(), &HashMap::new()).unwrap_err();
        assert_eq!(f.code, Code::ConfigInvalid);
        assert!(f.message.contains("DATABASE_URL"));
    }

    #[test]
    fn every_cache_variable_has_an_option() {
        for var in bisman_cache::env::VARIABLES {
            assert!(variables().contains(&var), "{var}");
        }
    }
}
