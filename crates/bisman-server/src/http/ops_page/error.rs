//! What can stop a page, and its one mapping to a browser response: a
//! redirect to the login form, or a small HTML error page. A 5xx is logged
//! in full (by [`ApiError`]'s rules) and shown with a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::html::{h, Markup};
use super::layout;
use crate::error::ApiError;

/// Why a page cannot be shown.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No live session: off to the login form, then back to `next`.
    #[error("log in first")]
    LoggedOut {
        /// The page to return to (always one of the page paths).
        next: &'static str,
    },
    /// Logged in, but not an active super admin holding `admin/ops`.
    #[error("the ops page is for super admins holding admin/ops")]
    Forbidden,
    /// A form without this session's CSRF token, or from another origin.
    #[error("the form did not come from this page")]
    Csrf,
    /// Anything the API layer can fail with (database, cache, input).
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> Self {
        PageError::Api(e.into())
    }
}

impl From<bisman_cache::CacheError> for PageError {
    fn from(e: bisman_cache::CacheError) -> Self {
        PageError::Api(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, title, message): (StatusCode, &'static str, &'static str) = match self {
            PageError::LoggedOut { next } => return layout::to_login(next),
            PageError::Api(ApiError::Unauthenticated) => return layout::to_login("/ops"),
            PageError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not for this account",
                "The ops page is for super admins holding the admin/ops permission. Log in with such an account.",
            ),
            PageError::Csrf => (
                StatusCode::FORBIDDEN,
                "Form refused",
                "This form did not come from this ops page (or your session changed since it was shown). Reload the page and try again.",
            ),
            PageError::Api(e) => {
                let (status, _) = e.status_and_code();
                if status.is_server_error() {
                    // Logs the details by the API's rules; the page shows none.
                    drop(e.into_response());
                    (
                        status,
                        "Something failed",
                        "The service could not answer just now; the details are in its log. Try again in a moment.",
                    )
                } else if status == StatusCode::TOO_MANY_REQUESTS {
                    (
                        status,
                        "Too many attempts",
                        "Too many failed logins; wait a few minutes and try again.",
                    )
                } else {
                    (
                        status,
                        "Request refused",
                        "The request was not understood.",
                    )
                }
            }
        };
        let mut body = Markup::new();
        h!(
            body,
            "<section class=\"card narrow\"><h1>",
            title,
            "</h1><p>",
            message,
            "</p><p><a href=\"/ops/login\">Log in</a> · <a href=\"/ops\">Ops overview</a></p></section>"
        );
        layout::respond(status, layout::document(title, None, body))
    }
}
