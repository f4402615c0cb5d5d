//! [`Reads`]: the extractor a read-heavy handler takes to run its queries
//! on a replica when one may answer, and on the primary otherwise.

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use bisman_cache::{SessionToken, TokenHash};
use bisman_db::replicas::{Lsn, PrimaryReason, Route};
use sqlx::PgPool;

use super::{DbRouter, LSN_HEADER};
use crate::error::{ApiError, ApiResult};
use crate::http::AppState;

/// How this request's reads may be served: which session it belongs to and
/// the WAL position the client asked to read at least (`Bisman-Lsn`).
pub struct Reads {
    router: DbRouter,
    session: Option<TokenHash>,
    asked: Option<Lsn>,
}

impl FromRequestParts<AppState> for Reads {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let router = state.db.clone();
        if router.replicas().is_none() {
            // No replica: nothing to decide, and the request is read exactly
            // as it would be without this extractor.
            return Ok(Reads {
                router,
                session: None,
                asked: None,
            });
        }
        let asked = match parts.headers.get(LSN_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.parse::<Lsn>().ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_lsn",
                            "`Bisman-Lsn` must be a WAL position like 16/B374D848, as the service sent it",
                        )
                    })?,
            ),
        };
        Ok(Reads {
            router,
            session: session_of(parts),
            asked,
        })
    }
}

/// The hash of the bearer token, if the request carries a well-formed one
/// (whether the session is valid is the `Caller` extractor's business).
pub(crate) fn session_of(parts: &Parts) -> Option<TokenHash> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(|raw| SessionToken::parse(raw.trim()))
        .map(|t| t.hash())
}

impl Reads {
    /// Runs `read` (queries that may be a little behind, no transaction, no
    /// permission data) on a replica that has replayed this caller's last
    /// write and anything the client asked for; on the primary when none
    /// has, none is healthy, or the caller's last write cannot be known. A
    /// read that fails on a replica is made again on the primary, so a
    /// standby going away mid-request costs time, not an error.
    pub async fn run<T, E, F, Fut>(&self, read: F) -> ApiResult<T>
    where
        F: Fn(PgPool) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<ApiError>,
    {
        let primary = || read(self.router.primary().clone());
        let Some(set) = self.router.replicas() else {
            return primary().await.map_err(Into::into);
        };
        if !set.any_usable() {
            // Nothing to look the caller's last write up for.
            set.count_primary(PrimaryReason::NoneHealthy);
            return primary().await.map_err(Into::into);
        }
        let floor = match self.router.floor(self.session.as_ref(), self.asked).await {
            Ok(floor) => floor,
            Err(()) => {
                set.count_primary(PrimaryReason::FloorUnknown);
                return primary().await.map_err(Into::into);
            }
        };
        let i = match set.route(floor).await {
            Route::Replica(i) => i,
            Route::Primary(_) => return primary().await.map_err(Into::into),
        };
        match read(set.pool(i).clone()).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let e: ApiError = e.into();
                // Unavailable is what connection failures map to: skip the
                // replica until its next check. Anything else (a conflict
                // with recovery cancelling the query, a relation a lagging
                // standby does not have yet) only sends this read away.
                let unreachable = matches!(e, ApiError::Unavailable(_));
                tracing::warn!(replica = set.name(i), error = ?e, unreachable, "read failed on a replica; reading the primary");
                set.read_failed(i, unreachable);
                primary().await.map_err(Into::into)
            }
        }
    }
}
