//! Checking what JavaScript passed, before any of it reaches the cache.
//!
//! Every argument arrives untyped and is checked here, so that a wrong type,
//! a negative id, an unknown name or a huge string is an `INVALID_ARGUMENT`
//! error naming the argument, never a crash and never a silent coercion
//! (`"12"` is not the user 12, `1.5` is not a user at all).

use std::str::FromStr;

use bisman_cache::{Action, InvalidationEvent, SessionToken, TokenHash, UserType};
use napi::bindgen_prelude::{FromNapiValue, Unknown, ValueType};
use napi::{sys, JsValue};
use serde_json::Value;

use crate::failure::Failure;

/// The longest string any argument may be, in UTF-8 bytes. Nothing the
/// cache takes is near it (keys are at most 63, tokens 64); it only keeps a
/// mistaken megabyte from being copied around.
pub const MAX_STRING: usize = 4096;

/// A JavaScript type's name, for messages.
fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Undefined => "undefined",
        ValueType::Null => "null",
        ValueType::Boolean => "a boolean",
        ValueType::Number => "a number",
        ValueType::String => "a string",
        ValueType::Symbol => "a symbol",
        ValueType::Object => "an object",
        ValueType::Function => "a function",
        ValueType::External => "an external",
        _ => "an unknown value",
    }
}

fn kind(v: &Unknown<'_>) -> Result<ValueType, Failure> {
    v.get_type()
        .map_err(|e| Failure::invalid(format!("unreadable argument: {e}")))
}

/// Room for the strings the cache takes (keys are at most 63 bytes, tokens
/// and hashes 64) on the stack, so that reading one is one Node-API call.
const SHORT: usize = 128;

/// The "wrong type" failure for `v`.
fn wrong_type(v: &Unknown<'_>, name: &str, expected: &str) -> Failure {
    let got = kind(v).map(type_name).unwrap_or("an unreadable value");
    Failure::invalid(format!("`{name}` must be {expected}, got {got}"))
}

/// Calls `f` with a string argument of at most [`MAX_STRING`] bytes, read
/// onto the stack when it is short (no allocation: the hot path's user
/// types, keys and tokens all are).
pub fn with_str<T>(
    v: &Unknown<'_>,
    name: &str,
    f: impl FnOnce(&str) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let raw = v.value();
    let mut short = [0u8; SHORT];
    let mut written = 0usize;
    // SAFETY: `raw` is a value of the current call and `short` has room for
    // SHORT bytes (Node-API writes at most SHORT - 1 and a NUL).
    let status = unsafe {
        sys::napi_get_value_string_utf8(
            raw.env,
            raw.value,
            short.as_mut_ptr().cast(),
            SHORT,
            &mut written,
        )
    };
    if status == sys::Status::napi_string_expected {
        return Err(wrong_type(v, name, "a string"));
    }
    if status != sys::Status::napi_ok {
        return Err(Failure::invalid(format!("`{name}` cannot be read")));
    }
    // Node-API never splits a character: with room for a whole one (4
    // bytes) left over, the string was not cut short.
    if written + 4 < SHORT {
        let s = std::str::from_utf8(&short[..written])
            .map_err(|_| Failure::invalid(format!("`{name}` cannot be read as UTF-8")))?;
        return f(s);
    }
    let mut len = 0usize;
    // SAFETY: as above; a null buffer asks for the length only.
    let status = unsafe {
        sys::napi_get_value_string_utf8(raw.env, raw.value, std::ptr::null_mut(), 0, &mut len)
    };
    if status != sys::Status::napi_ok {
        return Err(Failure::invalid(format!("`{name}` cannot be read")));
    }
    if len > MAX_STRING {
        return Err(Failure::invalid(format!(
            "`{name}` is {len} bytes long; at most {MAX_STRING} are accepted"
        )));
    }
    // SAFETY: known to be a string.
    let s = unsafe { String::from_napi_value(raw.env, raw.value) }
        .map_err(|e| Failure::invalid(format!("`{name}` cannot be read: {e}")))?;
    f(&s)
}

/// A string argument of at most [`MAX_STRING`] bytes.
pub fn string(v: &Unknown<'_>, name: &str) -> Result<String, Failure> {
    with_str(v, name, |s| Ok(s.to_string()))
}

/// A database id: an integer from 1 to 2³¹−1 (`users.id`, `super_admins.id`,
/// `roles.id` are `SERIAL`).
pub fn id(v: &Unknown<'_>, name: &str) -> Result<i32, Failure> {
    let raw = v.value();
    let mut n = 0f64;
    // SAFETY: `raw` is a value of the current call.
    let status = unsafe { sys::napi_get_value_double(raw.env, raw.value, &mut n) };
    if status != sys::Status::napi_ok {
        return Err(wrong_type(v, name, "a number (an integer id)"));
    }
    id_from_f64(n, name)
}

/// The range check of [`id`].
pub fn id_from_f64(n: f64, name: &str) -> Result<i32, Failure> {
    if n.is_finite() && n.fract() == 0.0 && n >= 1.0 && n <= f64::from(i32::MAX) {
        Ok(n as i32)
    } else {
        Err(Failure::invalid(format!(
            "`{name}` must be an integer id from 1 to {}, got {n}",
            i32::MAX
        )))
    }
}

/// One of the ERP's user types (`users.user_type`): `SUPER_ADMIN`, `ADMIN`,
/// `MANAGER` or `STAFF`. What the caller claims; the database decides.
pub fn user_type(v: &Unknown<'_>, name: &str) -> Result<UserType, Failure> {
    with_str(v, name, |s| {
        s.parse().map_err(|_| {
            Failure::invalid(format!(
                "`{name}` must be SUPER_ADMIN, ADMIN, MANAGER or STAFF, got {:?}",
                clip(s)
            ))
        })
    })
}

/// A module or page key: the schema's rule (`modules.key`, `pages.key`:
/// `^[a-z][a-z0-9_]{0,62}$`), which `bisman serve` applies to its checks too.
pub fn key(v: &Unknown<'_>, name: &str) -> Result<String, Failure> {
    with_str(v, name, |s| {
        if is_key(s) {
            Ok(s.to_string())
        } else {
            Err(Failure::invalid(format!(
                "`{name}` must be a key like `payments` (a lowercase letter, then lowercase letters, digits or _; at most 63), got {:?}",
                clip(s)
            )))
        }
    })
}

/// Whether `s` is a module or page key.
pub fn is_key(s: &str) -> bool {
    s.len() <= 63
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// An action on a page: `view`, `create`, `edit`, `delete` or `approve`.
pub fn action(v: &Unknown<'_>, name: &str) -> Result<Action, Failure> {
    with_str(v, name, |s| {
        Action::parse(s).ok_or_else(|| {
            Failure::invalid(format!(
                "`{name}` must be view, create, edit, delete or approve, got {:?}",
                clip(s)
            ))
        })
    })
}

/// A session token as a client presents it. `None` when it is a string but
/// not a token the service issues (64 lowercase hex digits): such a string
/// names no session, exactly as `bisman serve` answers 401 for it.
pub fn presented_token(v: &Unknown<'_>, name: &str) -> Result<Option<SessionToken>, Failure> {
    with_str(v, name, |s| Ok(SessionToken::parse(s)))
}

/// A session token the caller claims is one (to hash it, or to revoke its
/// session): anything else is a mistake.
pub fn token(v: &Unknown<'_>, name: &str) -> Result<SessionToken, Failure> {
    presented_token(v, name)?.ok_or_else(|| {
        Failure::invalid(format!(
            "`{name}` must be a session token: 64 lowercase hexadecimal digits"
        ))
    })
}

/// A token's SHA-256 as 64 hexadecimal digits (what `user_sessions.token_hash` holds).
pub fn token_hash(v: &Unknown<'_>, name: &str) -> Result<TokenHash, Failure> {
    let s = string(v, name)?;
    (s.len() == 64)
        .then(|| TokenHash::from_hex(&s))
        .flatten()
        .ok_or_else(|| {
            Failure::invalid(format!(
                "`{name}` must be the SHA-256 of a session token as 64 hexadecimal digits (hashToken(token) computes it)"
            ))
        })
}

/// One of spec §4's invalidation events.
pub fn event(v: &Unknown<'_>, name: &str) -> Result<InvalidationEvent, Failure> {
    let s = string(v, name)?;
    InvalidationEvent::from_str(&s).map_err(|_| {
        let known: Vec<&str> = InvalidationEvent::ALL.iter().map(|e| e.as_str()).collect();
        Failure::invalid(format!(
            "`{name}` must be one of {}, got {:?}",
            known.join(", "),
            clip(&s)
        ))
    })
}

/// An options object (or `undefined` / `null`, meaning none) as JSON.
pub fn options(v: &Unknown<'_>, name: &str) -> Result<serde_json::Map<String, Value>, Failure> {
    let t = kind(v)?;
    match t {
        ValueType::Undefined | ValueType::Null => return Ok(Default::default()),
        ValueType::Object => {}
        other => {
            return Err(Failure::invalid(format!(
                "`{name}` must be an object, got {}",
                type_name(other)
            )))
        }
    }
    let raw = v.value();
    // SAFETY: checked to be an object above; the conversion bounds depth
    // and size.
    match unsafe { Value::from_napi_value(raw.env, raw.value) } {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Failure::invalid(format!("`{name}` must be a plain object"))),
        Err(e) => Err(Failure::invalid(format!("`{name}` cannot be read: {e}"))),
    }
}

/// At most 64 characters of `s`, for messages.
fn clip(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_32_bit_integers() {
        assert_eq!(id_from_f64(1.0, "id").unwrap(), 1);
        assert_eq!(id_from_f64(2_147_483_647.0, "id").unwrap(), i32::MAX);
        for bad in [
            0.0,
            -1.0,
            1.5,
            2_147_483_648.0,
            f64::NAN,
            f64::INFINITY,
            -0.0,
        ] {
            assert!(id_from_f64(bad, "userId").is_err(), "{bad}");
        }
        assert!(id_from_f64(-3.0, "userId")
            .unwrap_err()
            .message
            .contains("userId"));
    }

    #[test]
    fn keys_follow_the_schema() {
        for ok in ["payments", "a", "list_2", &"a".repeat(63)] {
            assert!(is_key(ok), "{ok}");
        }
        for bad in [
            "",
            "Payments",
            "2fa",
            "_x",
            "pay-ments",
            "pay ments",
            &"a".repeat(64),
            "é",
        ] {
            assert!(!is_key(bad), "{bad}");
        }
    }

    #[test]
    fn messages_clip_long_values() {
        let long = "x".repeat(1000);
        assert_eq!(clip(&long).chars().count(), 65);
        assert_eq!(clip("short"), "short");
    }
}
