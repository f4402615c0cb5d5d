//! Extractors whose rejections are [`ApiError`]s (so that a malformed body,
//! query or path gets the stable JSON error), and input validation helpers.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;

use crate::error::ApiError;

/// `axum::Json` with the service's error body on rejection.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

/// `axum::extract::Query` with the service's error body on rejection.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with the service's error body on rejection.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// An optional JSON body: the type's default when the body is empty.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid(e.to_string()),
        _ => ApiError::bad_request("malformed_json", e.to_string()),
    })
}

/// Checks that `value` has between `min` and `max` characters.
pub fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid(format!(
            "`{field}` must have between {min} and {max} characters, it has {n}"
        )));
    }
    Ok(())
}

/// Checks a module or page key (`^[a-z][a-z0-9_]{0,62}$`, as the catalogue).
pub fn check_key(field: &str, value: &str) -> Result<(), ApiError> {
    let ok = value.len() <= 63
        && value.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "`{field}` must be a key like `payments` (lowercase letters, digits, _; at most 63)"
        )))
    }
}

/// A page size: `default` when absent, 422 outside `1..=max`.
pub fn page_size(limit: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(format!(
            "`limit` must be between 1 and {max}, got {n}"
        ))),
    }
}

/// Checks an id taken from a path (a thread or message id): printable ASCII,
/// at most 100 characters; 404 otherwise, as for any id that does not exist.
pub fn check_text_id(value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 100 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators() {
        assert!(check_len("x", "abc", 1, 3).is_ok());
        assert!(check_len("x", "", 1, 3).is_err());
        assert!(check_len("x", "ééé", 1, 3).is_ok());
        assert!(check_key("m", "payments").is_ok());
        for bad in ["", "Pay", "1a", "a-b", &"a".repeat(64)] {
            assert!(check_key("m", bad).is_err(), "{bad}");
        }
        assert_eq!(page_size(None, 50, 200).unwrap(), 50);
        assert!(page_size(Some(0), 50, 200).is_err());
        assert!(page_size(Some(-5), 50, 200).is_err());
        assert!(page_size(Some(201), 50, 200).is_err());
        assert!(check_text_id("msg_1").is_ok());
        assert!(check_text_id("a b").is_err());
    }
}
