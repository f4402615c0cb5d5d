//! The layer that remembers, after every request that may have written,
//! the WAL position its reads must see from then on.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bisman_cache::TokenHash;

use super::{DbRouter, LSN_HEADER};

/// After a request with a method that may write (anything but `GET`,
/// `HEAD`, `OPTIONS`), reads the primary's flushed WAL position, remembers
/// it for the session (so that its next reads, on any instance, wait for a
/// replica that has replayed it) and returns it in `Bisman-Lsn` (for
/// clients that carry it themselves). Without replicas it does nothing.
///
/// The position is taken once the handler has returned, after its commits;
/// not after a 401 (no valid session, nothing written for one).
/// A request dropped midway (the client went away) may have committed all
/// the same: then the position is taken and remembered in the background.
pub async fn remember_writes(
    State(db): State<DbRouter>,
    request: Request<Body>,
    next: Next,
) -> Response {
    if db.replicas().is_none()
        || matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        )
    {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let session = super::reads::session_of(&parts);
    let mut pending = Pending {
        db: db.clone(),
        session,
        armed: true,
    };
    let mut response = next.run(Request::from_parts(parts, body)).await;
    pending.armed = false;
    if response.status() == StatusCode::UNAUTHORIZED {
        // No valid session: nothing was written for it, and a made-up token
        // must not make the shared store keep a key for it.
        return response;
    }
    // Spawned, so that it finishes even if this request is dropped now.
    let remembered = tokio::spawn(async move { db.remember_write(session.as_ref()).await });
    if let Ok(Some(lsn)) = remembered.await {
        if let Ok(v) = HeaderValue::from_str(&lsn.to_string()) {
            response.headers_mut().insert(LSN_HEADER, v);
        }
    }
    response
}

/// Remembers the write position if the request is dropped before its
/// handler returned.
struct Pending {
    db: DbRouter,
    session: Option<TokenHash>,
    armed: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (db, session) = (self.db.clone(), self.session);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { db.remember_write(session.as_ref()).await });
        }
    }
}
