//! Errors as JavaScript sees them: an `Error` whose `code` is one of a few
//! stable strings, and whose message never holds a token or a password.

use std::any::Any;

use bisman_cache::CacheError;
use napi::bindgen_prelude::JsError;
use napi::Env;

/// The stable `code` of every error the package raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A caller's mistake: wrong type, out of range, unknown name, too long.
    InvalidArgument,
    /// The configuration (options or environment) cannot be used.
    ConfigInvalid,
    /// `configure()` after the cache was first used (call `close()` first).
    AlreadyConfigured,
    /// Used after `close()` (until `configure()` is called again).
    Closed,
    /// Neither the cache nor PostgreSQL could answer: never a grant.
    CacheUnavailable,
    /// The configured store cannot do this (e.g. `redis.info` without Redis).
    NotSupported,
    /// A bug, including a panic in Rust: reported, never a crash.
    Internal,
}

impl Code {
    /// Every code, for the documentation test.
    pub const ALL: [Code; 7] = [
        Code::InvalidArgument,
        Code::ConfigInvalid,
        Code::AlreadyConfigured,
        Code::Closed,
        Code::CacheUnavailable,
        Code::NotSupported,
        Code::Internal,
    ];

    /// The spelling JavaScript sees in `error.code`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::ConfigInvalid => "CONFIG_INVALID",
            Code::AlreadyConfigured => "ALREADY_CONFIGURED",
            Code::Closed => "CACHE_CLOSED",
            Code::CacheUnavailable => "CACHE_UNAVAILABLE",
            Code::NotSupported => "NOT_SUPPORTED",
            Code::Internal => "INTERNAL",
        }
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// A failed call: its code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The stable code.
    pub code: Code,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A caller's mistake.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// A panic, caught: its message when it has one.
    pub fn panic(payload: Box<dyn Any + Send>) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into());
        Self::new(
            Code::Internal,
            format!("internal error in the native cache (a panic, caught): {what}"),
        )
    }

    /// The JavaScript `Error` for this failure, as a napi error that carries
    /// it (throwing or rejecting with it hands JavaScript that very object).
    pub fn into_napi(self, env: &Env) -> napi::Error {
        let js = JsError::from(napi::Error::new(self.code, self.message)).into_unknown(*env);
        napi::Error::from(js)
    }
}

impl From<CacheError> for Failure {
    fn from(e: CacheError) -> Self {
        let code = match &e {
            CacheError::Unavailable(_) | CacheError::Database(_) | CacheError::Store(_) => {
                Code::CacheUnavailable
            }
            CacheError::Config(_) => Code::ConfigInvalid,
            CacheError::Decode(_) => Code::Internal,
        };
        Self::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_errors_map_to_codes_and_fail_closed() {
        let f = Failure::from(CacheError::Unavailable("down".into()));
        assert_eq!(f.code, Code::CacheUnavailable);
        let f = Failure::from(CacheError::Store("timeout".into()));
        assert_eq!(f.code, Code::CacheUnavailable);
        let f = Failure::from(CacheError::Database(sqlx::Error::PoolClosed));
        assert_eq!(f.code, Code::CacheUnavailable);
        let f = Failure::from(CacheError::Config("bad".into()));
        assert_eq!(f.code, Code::ConfigInvalid);
    }

    #[test]
    fn panics_keep_their_message() {
        let f = Failure::panic(Box::new("boom"));
        assert_eq!(f.code, Code::Internal);
        assert!(f.message.contains("boom"));
        let f = Failure::panic(Box::new(String::from("bang")));
        assert!(f.message.contains("bang"));
        let f = Failure::panic(Box::new(42));
        assert!(f.message.contains("without a message"));
    }

    #[test]
    fn codes_are_distinct_screaming_snake_case() {
        let names: std::collections::BTreeSet<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len());
        assert!(names
            .iter()
            .all(|n| n.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')));
    }
}
