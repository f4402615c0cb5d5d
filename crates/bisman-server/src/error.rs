//! The service's one error type and its one mapping to HTTP.
//!
//! Every 4xx and 5xx the service sends has the body
//! `{"error": {"code": "...", "message": "..."}}` with a stable `code`.
//! Everything a client can get wrong maps to a 4xx here (including the
//! extractors' rejections and database errors caused by input), so a
//! client's mistake is never a 500. A 5xx is logged in full and answered
//! with a generic message; nothing from the request (tokens, passwords) is
//! ever part of a log line.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (syntax, types, parameters): 400.
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// Human-readable detail.
        message: String,
    },
    /// The request is well-formed but its values are not acceptable: 422.
    #[error("{0}")]
    Validation(String),
    /// No valid session: 401.
    #[error("a valid session token is required (Authorization: Bearer <token>)")]
    Unauthenticated,
    /// Login failed (the message never says which part was wrong): 401.
    #[error("invalid tenant, e-mail or password")]
    InvalidCredentials,
    /// The session is valid but not allowed to do this: 403.
    #[error("{0}")]
    Forbidden(String),
    /// Not found, or not visible to the caller (another tenant's objects): 404.
    #[error("not found")]
    NotFound,
    /// The method is not allowed on this path: 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The object is not in a state that allows this: 409.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the limit: 413.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The body is not JSON: 415.
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// Too many attempts: 429, with `Retry-After`.
    #[error("too many attempts; try again in {retry_after} seconds")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The request took longer than the configured timeout: 503.
    #[error("the request took too long")]
    Timeout,
    /// A dependency (PostgreSQL, the cache) cannot answer: 503. Permission
    /// checks that cannot be answered end here, never in a grant.
    #[error("the service cannot answer right now")]
    Unavailable(String),
    /// A bug or an unexpected failure: 500.
    #[error("internal error")]
    Internal(anyhow::Error),
}

/// Shorthand for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (`not_found`, `validation_failed`, …).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// A 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 422.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::Validation(message.into())
    }

    /// A 403 for a missing permission.
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(message.into())
    }

    /// The status and stable code: the single mapping.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The error a bare status stands for (responses made by layers and by
    /// axum itself, which carry no JSON body of their own).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ApiError::Timeout,
            StatusCode::UNAUTHORIZED => ApiError::Unauthenticated,
            StatusCode::TOO_MANY_REQUESTS => ApiError::RateLimited { retry_after: 1 },
            s if s.is_server_error() => ApiError::Unavailable(format!("status {s}")),
            s => {
                ApiError::bad_request("bad_request", s.canonical_reason().unwrap_or("bad request"))
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal error; the service logged the details".to_string()
            }
            ApiError::Unavailable(why) => {
                tracing::warn!(%why, "answering 503");
                self.to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_string(),
                message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => ApiError::invalid(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::bad_request("malformed_json", e.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            other => ApiError::bad_request("unreadable_body", other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<bisman_cache::CacheError> for ApiError {
    fn from(e: bisman_cache::CacheError) -> Self {
        match e {
            bisman_cache::CacheError::Config(_) | bisman_cache::CacheError::Decode(_) => {
                ApiError::Internal(anyhow::Error::new(e))
            }
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

/// Whether `e` says PostgreSQL cannot be reached or is going away (a
/// connection cut, reset or refused, a full pool, a server shutting down or
/// starting up, too many connections): the request may succeed later, so
/// 503, not 500.
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception; 57P0x: admin/crash shutdown, cannot
            // connect now; 53300: too many connections.
            c.starts_with("08") || c.starts_with("57P") || c == "53300"
        }),
        _ => false,
    }
}

impl From<anyhow::Error> for ApiError {
    /// A failure that reached a handler through `anyhow` (queries and jobs
    /// that add context) is a 503 when its cause is an unreachable database
    /// or cache, like the same error met directly; anything else is a 500.
    fn from(e: anyhow::Error) -> Self {
        let unavailable = e.chain().any(|cause| {
            cause
                .downcast_ref::<sqlx::Error>()
                .is_some_and(database_unavailable)
                || cause
                    .downcast_ref::<bisman_cache::CacheError>()
                    .is_some_and(|c| {
                        !matches!(
                            c,
                            bisman_cache::CacheError::Config(_)
                                | bisman_cache::CacheError::Decode(_)
                        )
                    })
        });
        if unavailable {
            ApiError::Unavailable(format!("{e:#}"))
        } else {
            ApiError::Internal(e)
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if database_unavailable(&e) {
            return ApiError::Unavailable(e.to_string());
        }
        if let sqlx::Error::Database(db) = &e {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            // Integrity and data errors come from values a client sent that
            // slipped past validation: still the client's mistake.
            if code == "23505" {
                return ApiError::Conflict("it exists already".into());
            }
            if code.starts_with("23") || code.starts_with("22") {
                tracing::info!(sqlstate = %code, "database refused a value");
                return ApiError::invalid(
                    "a value is out of range or refers to something that does not exist",
                );
            }
            if code == "57014" || code == "55P03" || code == "40001" || code == "40P01" {
                return ApiError::Unavailable(format!("database busy (SQLSTATE {code})"));
            }
        }
        match e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                ApiError::Unavailable(e.to_string())
            }
            other => ApiError::Internal(anyhow::Error::new(other)),
        }
    }
}

/// Gives an error response that has no JSON body (axum's own 404/405,
/// extractor rejections of raw bodies) the stable error body.
pub fn ensure_json(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // JSON bodies are ours already; HTML bodies are the ops page's own
    // error pages (`http::ops_page`), meant for a browser.
    let has_body_of_ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if has_body_of_ours {
        return response;
    }
    ApiError::from_status(status).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_status() {
        let cases = [
            (ApiError::bad_request("x", "y"), 400),
            (ApiError::invalid("x"), 422),
            (ApiError::Unauthenticated, 401),
            (ApiError::forbidden("x"), 403),
            (ApiError::NotFound, 404),
            (ApiError::Conflict("x".into()), 409),
            (ApiError::PayloadTooLarge, 413),
            (ApiError::RateLimited { retry_after: 3 }, 429),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Internal(anyhow::anyhow!("boom")), 500),
        ];
        for (e, status) in cases {
            assert_eq!(e.status_and_code().0.as_u16(), status, "{e:?}");
        }
        let r = ApiError::RateLimited { retry_after: 3 }.into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
    }
}
