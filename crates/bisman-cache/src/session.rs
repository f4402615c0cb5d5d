//! The session cache (spec §4): sessions keyed by the SHA-256 of their
//! token, read through the near-cache and the shared store from
//! `user_sessions`, sliding on activity.
//!
//! - A raw token is never stored or logged: keys, rows and bus messages hold
//!   its hash only.
//! - An expired (idle or absolute) or revoked session is never returned,
//!   from any layer: every layer's copy is checked against the clock, and a
//!   revocation tombstones the shared copies and invalidates every
//!   near-cache before it returns.
//! - Activity slides the idle timeout: the shared copy is refreshed at most
//!   once a minute per instance and `user_sessions.last_seen_at` at most
//!   every five minutes, never on every request.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use futures::future::FutureExt;
use serde::{Deserialize, Serialize};

use crate::engine::{namespace_of, Inner, Pending, TOMBSTONE};
use crate::error::{CacheError, Result};
use crate::ids::{SessionToken, TenantId, TokenHash, UserId, UserType};
use crate::keys::{Namespace, Scope};
use crate::near::AnyValue;
use crate::stats::{Event, Layer};
use crate::sync::Delivery;

/// How often activity refreshes the shared copy of a session.
const TOUCH_CACHE_EVERY: i64 = 60;
/// How often activity is written to `user_sessions.last_seen_at`.
const TOUCH_DATABASE_EVERY: i64 = 300;

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `user_sessions.id`.
    pub session_id: i64,
    /// The user's tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// The user's type when the session was created.
    pub user_type: UserType,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it ends whatever the activity.
    pub expires_at: DateTime<Utc>,
    /// Last activity (ends the session after the idle timeout).
    pub last_seen_at: DateTime<Utc>,
    /// Last activity written to PostgreSQL.
    #[serde(default)]
    pub persisted_seen_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Whether it is usable at `now` with idle timeout `idle`.
    pub fn is_valid_at(&self, now: DateTime<Utc>, idle: Duration) -> bool {
        now < self.expires_at && now < self.last_seen_at + idle
    }
}

/// A session as listed for its user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SessionInfo {
    /// `user_sessions.id`.
    pub session_id: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Last activity written to PostgreSQL (up to five minutes behind).
    pub last_seen_at: DateTime<Utc>,
    /// When it ends at the latest.
    pub expires_at: DateTime<Utc>,
    /// Client address at login.
    pub ip_address: Option<String>,
    /// Client at login.
    pub user_agent: Option<String>,
}

/// Tokens handed to the client at login or refresh: shown once, never stored.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    /// The session token.
    pub token: SessionToken,
    /// The refresh token.
    pub refresh_token: SessionToken,
    /// When the refresh token ends.
    pub refresh_expires_at: DateTime<Utc>,
    /// The session.
    pub session: Session,
}

/// Who is logging in, from where.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Tenant.
    pub tenant_id: TenantId,
    /// User.
    pub user_id: UserId,
    /// Their type.
    pub user_type: UserType,
    /// Client address.
    pub ip_address: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

/// A near-cache entry: the session plus its activity, moved by hits.
struct NearSession {
    session: Session,
    seen_ms: AtomicI64,
    pushed_ms: AtomicI64,
}

/// The session cache of a [`crate::Cache`].
#[derive(Clone)]
pub struct SessionCache {
    pub(crate) inner: Arc<Inner>,
}

type Row = (
    i64,
    uuid::Uuid,
    i32,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
);

#[derive(sqlx::FromRow)]
struct Rotated {
    old_hash: String,
    id: i64,
    tenant_id: uuid::Uuid,
    user_id: i32,
    user_type: String,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

fn from_row(r: Row) -> Result<Session> {
    Ok(Session {
        session_id: r.0,
        tenant_id: TenantId(r.1),
        user_id: UserId(r.2),
        user_type: r
            .3
            .parse()
            .map_err(|e| CacheError::Unavailable(format!("session {}: {e}", r.0)))?,
        created_at: r.4,
        expires_at: r.5,
        last_seen_at: r.6,
        persisted_seen_at: Some(r.6),
    })
}

impl SessionCache {
    fn idle(&self) -> Duration {
        Duration::from_std(self.inner.config.ttls.sessions).unwrap_or(Duration::hours(1))
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Creates a session in `user_sessions` and caches it; returns the
    /// tokens to hand to the client.
    #[tracing::instrument(skip_all, fields(user = %new.user_id))]
    pub async fn create_session(&self, new: &NewSession) -> Result<IssuedSession> {
        let (token, refresh_token) = (SessionToken::generate(), SessionToken::generate());
        let now = self.now();
        let lifetime =
            Duration::from_std(self.inner.config.session_max_lifetime).unwrap_or(Duration::days(7));
        let refresh_ttl =
            Duration::from_std(self.inner.config.ttls.refresh_tokens).unwrap_or(Duration::days(7));
        let (expires_at, refresh_expires_at) = (now + lifetime, now + refresh_ttl);
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO user_sessions (tenant_id, user_id, user_type, token_hash, refresh_token_hash, created_at,
                                        last_seen_at, expires_at, refresh_expires_at, ip_address, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(new.tenant_id.0)
        .bind(new.user_id.0)
        .bind(new.user_type.as_str())
        .bind(token.hash().to_hex())
        .bind(refresh_token.hash().to_hex())
        .bind(now)
        .bind(expires_at)
        .bind(refresh_expires_at)
        .bind(&new.ip_address)
        .bind(&new.user_agent)
        .fetch_one(&self.inner.pool)
        .await?;
        let session = Session {
            session_id: id,
            tenant_id: new.tenant_id,
            user_id: new.user_id,
            user_type: new.user_type,
            created_at: now,
            expires_at,
            last_seen_at: now,
            persisted_seen_at: Some(now),
        };
        self.set_session(&token.hash(), &session).await?;
        Ok(IssuedSession {
            token,
            refresh_token,
            refresh_expires_at,
            session,
        })
    }

    /// Spec §4 `setSession(tokenHash, session)`: caches a session that exists
    /// in `user_sessions` (login, or a session made elsewhere).
    pub async fn set_session(&self, hash: &TokenHash, session: &Session) -> Result<()> {
        let Some(store) = self.inner.store().await else {
            return Ok(());
        };
        let ttl = self.shared_ttl(session);
        let stored = async {
            store
                .set(
                    &self.inner.keys.session(hash),
                    &serde_json::to_string(session)?,
                    ttl,
                )
                .await?;
            store
                .set_add(
                    &self.inner.keys.user_sessions(session.user_id),
                    &hash.to_hex(),
                    self.inner.config.ttls.refresh_tokens,
                )
                .await
        }
        .await;
        match stored {
            Ok(()) => self
                .inner
                .stats
                .count(Namespace::Sessions, Layer::L2, Event::Fill),
            Err(e) => self.inner.store_failed(Namespace::Sessions, &e),
        }
        Ok(())
    }

    /// How long the shared copy may live: the idle timeout, capped by the
    /// absolute end.
    fn shared_ttl(&self, session: &Session) -> std::time::Duration {
        let left = (session.expires_at - self.now())
            .to_std()
            .unwrap_or_default();
        left.min(self.inner.config.ttls.sessions)
            .max(std::time::Duration::from_secs(1))
    }

    /// Spec §4 `getSessionWithFallback(token)`: the live session for a
    /// token, from the near-cache, the shared store, or `user_sessions`
    /// (refilling the caches); `None` when it is unknown, expired or revoked.
    #[tracing::instrument(skip_all)]
    pub async fn get_session_with_fallback(&self, token: &SessionToken) -> Result<Option<Session>> {
        self.get_session_by_hash(token.hash()).await
    }

    /// [`SessionCache::get_session_with_fallback`] for a caller that holds
    /// only the token's hash (an ERP backend that hashed the token itself,
    /// as spec §4's `setSession(tokenHash, …)` does): the same read-through,
    /// filling the caches from `user_sessions`, which alone decides.
    #[tracing::instrument(skip_all)]
    pub async fn get_session_by_hash(&self, hash: TokenHash) -> Result<Option<Session>> {
        let key = self.inner.keys.session(&hash);
        let now = self.now();
        let stats = &self.inner.stats;
        if let Some(near) = &self.inner.near {
            if let Some(entry) = near
                .get(&key)
                .and_then(|v| v.downcast::<NearSession>().ok())
            {
                stats.count(Namespace::Sessions, Layer::L1, Event::Hit);
                return self.touch_near(&hash, &entry, now).await;
            }
            stats.count(Namespace::Sessions, Layer::L1, Event::Miss);
        }
        let snap = self.inner.near.as_ref().map(|n| n.snapshot(None));
        let this = self.clone();
        let out = self
            .inner
            .flights
            .run(format!("{key}|{snap:?}"), move || {
                async move { Ok(Arc::new(this.load(hash, now).await?) as AnyValue) }.boxed()
            })
            .await?;
        let Some(session) = out.downcast_ref::<Option<Session>>().cloned().flatten() else {
            return Ok(None);
        };
        let entry = Arc::new(NearSession {
            seen_ms: AtomicI64::new(session.last_seen_at.timestamp_millis()),
            pushed_ms: AtomicI64::new(session.last_seen_at.timestamp_millis()),
            session,
        });
        if let (Some(near), Some(snap)) = (&self.inner.near, snap) {
            let scope = Scope::UserSessions(entry.session.user_id);
            if near.insert(key, entry.clone() as AnyValue, scope, snap, false) {
                stats.count(Namespace::Sessions, Layer::L1, Event::Fill);
            }
        }
        self.touch_near(&hash, &entry, now).await
    }

    /// Shared store, then PostgreSQL.
    async fn load(&self, hash: TokenHash, now: DateTime<Utc>) -> Result<Option<Session>> {
        let key = self.inner.keys.session(&hash);
        let mut fill = false;
        if let Some(store) = self.inner.store().await {
            match store.get(&key).await {
                Ok(Some(text)) if text == TOMBSTONE => {
                    // Purged a moment ago: read the truth, do not refill.
                    self.inner
                        .stats
                        .count(Namespace::Sessions, Layer::L2, Event::Miss);
                }
                Ok(Some(text)) => match serde_json::from_str::<Session>(&text) {
                    Ok(s) if s.is_valid_at(now, self.idle()) => {
                        self.inner
                            .stats
                            .count(Namespace::Sessions, Layer::L2, Event::Hit);
                        return Ok(Some(s));
                    }
                    Ok(_) => {
                        // Expired by the clock (idle or absolute): gone everywhere.
                        self.inner
                            .stats
                            .count(Namespace::Sessions, Layer::L2, Event::Miss);
                        let _ = store.delete(std::slice::from_ref(&key)).await;
                        return Ok(None);
                    }
                    Err(_) => {
                        self.inner
                            .stats
                            .count(Namespace::Sessions, Layer::L2, Event::Error);
                        fill = true;
                    }
                },
                Ok(None) => {
                    self.inner
                        .stats
                        .count(Namespace::Sessions, Layer::L2, Event::Miss);
                    fill = true;
                }
                Err(e) => self.inner.store_failed(Namespace::Sessions, &e),
            }
        }
        let pool = self.inner.pool.clone();
        let idle = self.idle();
        let session = self
            .inner
            .load_source(
                Namespace::Sessions,
                async move {
                    let row: Option<Row> = sqlx::query_as(
                        "SELECT id, tenant_id, user_id, user_type, created_at, expires_at, last_seen_at
                         FROM user_sessions
                         WHERE token_hash = $1 AND is_active AND revoked_at IS NULL
                           AND expires_at > $2 AND last_seen_at > $2 - make_interval(secs => $3)",
                    )
                    .bind(hash.to_hex())
                    .bind(now)
                    .bind(idle.num_milliseconds() as f64 / 1000.0)
                    .fetch_optional(&pool)
                    .await?;
                    row.map(from_row).transpose()
                }
                .boxed(),
            )
            .await?;
        if let (Some(s), true) = (&session, fill) {
            if let Some(store) = self.inner.store().await {
                // NX: a tombstone written by a revocation meanwhile wins.
                let text = serde_json::to_string(s)?;
                match store.set_nx(&key, &text, self.shared_ttl(s)).await {
                    Ok(true) => {
                        self.inner
                            .stats
                            .count(Namespace::Sessions, Layer::L2, Event::Fill);
                        let index = self.inner.keys.user_sessions(s.user_id);
                        if let Err(e) = store
                            .set_add(
                                &index,
                                &hash.to_hex(),
                                self.inner.config.ttls.refresh_tokens,
                            )
                            .await
                        {
                            self.inner.store_failed(Namespace::RefreshTokens, &e);
                        }
                    }
                    Ok(false) => {}
                    Err(e) => self.inner.store_failed(Namespace::Sessions, &e),
                }
            }
        }
        Ok(session)
    }

    /// Checks a near-cached session against the clock and slides it.
    async fn touch_near(
        &self,
        hash: &TokenHash,
        entry: &NearSession,
        now: DateTime<Utc>,
    ) -> Result<Option<Session>> {
        let mut session = entry.session.clone();
        let seen = DateTime::from_timestamp_millis(entry.seen_ms.load(Ordering::Acquire))
            .unwrap_or(session.last_seen_at);
        session.last_seen_at = session.last_seen_at.max(seen);
        if !session.is_valid_at(now, self.idle()) {
            return Ok(None);
        }
        entry
            .seen_ms
            .fetch_max(now.timestamp_millis(), Ordering::AcqRel);
        let pushed = entry.pushed_ms.load(Ordering::Acquire);
        if now.timestamp_millis() - pushed >= TOUCH_CACHE_EVERY * 1000
            && entry
                .pushed_ms
                .compare_exchange(
                    pushed,
                    now.timestamp_millis(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
        {
            session.last_seen_at = now;
            self.slide(hash, &mut session, now).await;
        }
        session.last_seen_at = now;
        Ok(Some(session))
    }

    /// Writes activity to the shared copy, and to PostgreSQL when it is
    /// more than a few minutes behind.
    async fn slide(&self, hash: &TokenHash, session: &mut Session, now: DateTime<Utc>) {
        let behind = session
            .persisted_seen_at
            .is_none_or(|p| (now - p).num_seconds() >= TOUCH_DATABASE_EVERY);
        if behind {
            let updated = sqlx::query(
                "UPDATE user_sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2 AND revoked_at IS NULL",
            )
            .bind(session.session_id)
            .bind(now)
            .execute(&self.inner.pool)
            .await;
            match updated {
                Ok(_) => session.persisted_seen_at = Some(now),
                Err(e) => tracing::warn!(error = %e, "recording session activity failed"),
            }
        }
        if let Some(store) = self.inner.store().await {
            let text = serde_json::to_string(&*session).unwrap_or_default();
            if let Err(e) = store
                .set_xx(
                    &self.inner.keys.session(hash),
                    &text,
                    self.shared_ttl(session),
                )
                .await
            {
                self.inner.store_failed(Namespace::Sessions, &e);
            }
        }
    }

    /// Rotates a refresh token: a new session token and refresh token for
    /// the same session; the old ones stop working everywhere. `None` when
    /// the refresh token is unknown, expired or revoked.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &SessionToken) -> Result<Option<IssuedSession>> {
        let (token, next_refresh) = (SessionToken::generate(), SessionToken::generate());
        let now = self.now();
        let refresh_ttl =
            Duration::from_std(self.inner.config.ttls.refresh_tokens).unwrap_or(Duration::days(7));
        let row: Option<Rotated> = sqlx::query_as(
            "WITH old AS (
                 SELECT id, token_hash FROM user_sessions
                 WHERE refresh_token_hash = $1 AND is_active AND revoked_at IS NULL
                   AND refresh_expires_at > $4 AND expires_at > $4
                 FOR UPDATE)
             UPDATE user_sessions s
                SET token_hash = $2, refresh_token_hash = $3, last_seen_at = $4, refresh_expires_at = $5
               FROM old WHERE s.id = old.id
             RETURNING old.token_hash AS old_hash, s.id, s.tenant_id, s.user_id, s.user_type, s.created_at, s.expires_at",
        )
        .bind(refresh_token.hash().to_hex())
        .bind(token.hash().to_hex())
        .bind(next_refresh.hash().to_hex())
        .bind(now)
        .bind((now + refresh_ttl).min(now + Duration::days(3650)))
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let session = from_row((
            r.id,
            r.tenant_id,
            r.user_id,
            r.user_type,
            r.created_at,
            r.expires_at,
            now,
        ))?;
        self.purge(session.user_id, vec![r.old_hash]).await;
        self.set_session(&token.hash(), &session).await?;
        Ok(Some(IssuedSession {
            token,
            refresh_token: next_refresh,
            refresh_expires_at: now + refresh_ttl,
            session,
        }))
    }

    /// Revokes one session (logout); returns its user when it was live.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_session(&self, hash: &TokenHash) -> Result<Option<UserId>> {
        let user: Option<i32> = sqlx::query_scalar(
            "UPDATE user_sessions SET revoked_at = $2, is_active = false
             WHERE token_hash = $1 AND revoked_at IS NULL RETURNING user_id",
        )
        .bind(hash.to_hex())
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(user) = user.map(UserId) else {
            return Ok(None);
        };
        self.purge(user, vec![hash.to_hex()]).await;
        Ok(Some(user))
    }

    /// Revokes one session of `user` by its id (from the user's session
    /// list); whether it was live.
    pub async fn revoke_session_by_id(&self, user: UserId, session_id: i64) -> Result<bool> {
        let hash: Option<String> = sqlx::query_scalar(
            "UPDATE user_sessions SET revoked_at = $3, is_active = false
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL RETURNING token_hash",
        )
        .bind(session_id)
        .bind(user.0)
        .bind(self.now())
        .fetch_optional(&self.inner.pool)
        .await?;
        let Some(hash) = hash else { return Ok(false) };
        self.purge(user, vec![hash]).await;
        Ok(true)
    }

    /// Spec §4 `invalidateUserSessions(userId)`: ends every session of the
    /// user (all but `except`, for "log out my other sessions" and password
    /// changes), in PostgreSQL and in every cache. Returns how many ended.
    #[tracing::instrument(skip_all, fields(user = %user))]
    pub async fn invalidate_user_sessions(
        &self,
        user: UserId,
        except: Option<&TokenHash>,
    ) -> Result<u64> {
        let hashes: Vec<String> = sqlx::query_scalar(
            "UPDATE user_sessions SET revoked_at = $3, is_active = false
             WHERE user_id = $1 AND revoked_at IS NULL AND ($2::text IS NULL OR token_hash <> $2)
             RETURNING token_hash",
        )
        .bind(user.0)
        .bind(except.map(TokenHash::to_hex))
        .bind(self.now())
        .fetch_all(&self.inner.pool)
        .await?;
        let n = hashes.len() as u64;
        self.purge(user, hashes).await;
        Ok(n)
    }

    /// Forgets every cached copy of `user`'s sessions (the truth in
    /// PostgreSQL is unchanged: live sessions load again).
    pub async fn forget_user_sessions(&self, user: UserId) -> Result<Delivery> {
        let mut hashes = Vec::new();
        if let Some(store) = self.inner.store().await {
            match store
                .set_members(&self.inner.keys.user_sessions(user))
                .await
            {
                Ok(members) => hashes = members,
                Err(e) => self.inner.store_failed(Namespace::RefreshTokens, &e),
            }
        }
        Ok(self.purge(user, hashes).await)
    }

    /// Tombstones `hashes` in the shared store and invalidates the user's
    /// sessions in every near-cache.
    async fn purge(&self, user: UserId, hashes: Vec<String>) -> Delivery {
        let index = self.inner.keys.user_sessions(user);
        let scope = Scope::UserSessions(user);
        self.inner
            .stats
            .count(namespace_of(scope), Layer::Source, Event::Invalidation);
        let delivery = self
            .inner
            .invalidate(
                Pending {
                    scopes: vec![],
                    sessions: hashes.clone(),
                },
                &[scope],
            )
            .await;
        if let Some(store) = self.inner.store().await {
            for h in &hashes {
                if let Err(e) = store.set_remove(&index, h).await {
                    self.inner.store_failed(Namespace::RefreshTokens, &e);
                    break;
                }
            }
        }
        delivery
    }

    /// The user's live sessions, newest first (from PostgreSQL, the truth).
    pub async fn list_user_sessions(&self, user: UserId) -> Result<Vec<SessionInfo>> {
        let rows: Vec<SessionInfo> = sqlx::query_as(
            "SELECT id AS session_id, created_at, last_seen_at, expires_at, ip_address, user_agent FROM user_sessions
             WHERE user_id = $1 AND is_active AND revoked_at IS NULL AND expires_at > $2
               AND last_seen_at > $2 - make_interval(secs => $3)
             ORDER BY created_at DESC, id DESC",
        )
        .bind(user.0)
        .bind(self.now())
        .bind(self.idle().num_seconds() as f64)
        .fetch_all(&self.inner.pool)
        .await?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_idle_and_absolute() {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let s = Session {
            session_id: 1,
            tenant_id: TenantId(uuid::Uuid::nil()),
            user_id: UserId(1),
            user_type: UserType::Staff,
            created_at: t0,
            expires_at: t0 + Duration::hours(10),
            last_seen_at: t0,
            persisted_seen_at: None,
        };
        let idle = Duration::hours(1);
        assert!(s.is_valid_at(t0 + Duration::minutes(59), idle));
        assert!(!s.is_valid_at(t0 + Duration::minutes(60), idle));
        let active = Session {
            last_seen_at: t0 + Duration::hours(9) + Duration::minutes(30),
            ..s
        };
        assert!(
            !active.is_valid_at(t0 + Duration::hours(10), idle),
            "absolute end"
        );
    }
}
