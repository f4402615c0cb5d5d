//! Who is looking at the ops page, and whether a form really came from it.
//!
//! # Design
//!
//! The API takes `Authorization: Bearer <token>` and never reads cookies, so
//! a browser cannot be tricked into calling it with ambient credentials. A
//! browser page cannot attach that header to a plain navigation, so the page
//! keeps its session token in a cookie of its own, scoped as tightly as a
//! cookie can be:
//!
//! - `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's
//!   page, link or form makes the browser send it), `Path=/ops` (it never
//!   reaches `/api/v1`), `Secure` whenever the browser reached us over
//!   HTTPS (seen in the login form's `Origin`), no `Max-Age` (it ends with
//!   the browser session; the session itself ends earlier if idle).
//! - The token is an ordinary session from the session cache: the same
//!   idle timeout, the same revocation (logout anywhere, password change,
//!   account disabled), listed under `GET /api/v1/auth/sessions`.
//! - Every state-changing form (`POST`) carries a CSRF token and must pass
//!   an `Origin` check. The CSRF token is derived from the session token,
//!   `SHA-256("bisman-ops-csrf-v1\0" ‖ token)`: unguessable without the
//!   token, different per session, the same on every instance (no shared
//!   secret to distribute), and it reveals nothing about the token (nor the
//!   token's hash, which keys the caches). It is compared in constant time.
//! - `Origin` (sent by browsers with every POST) must name this host; a
//!   `null` or foreign origin is refused. Without `Origin`, a browser's
//!   `Sec-Fetch-Site` must say `same-origin` (or `none`); a client sending
//!   neither is not a browser carrying someone else's cookie, and still
//!   needs the CSRF token.
//!
//! The raw token only travels in the `Set-Cookie` and `Cookie` headers:
//! never in a URL, a page or a log line (the request span logs the path
//! only; redirects carry a page path, never a token).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use bisman_cache::{Action, Permissions, Session, SessionToken, TokenHash, UserId, UserType};
use sha2::{Digest, Sha256};

use super::error::PageError;
use super::layout::Nav;
use crate::error::ApiError;
use crate::http::AppState;
use crate::queries::ops_page as q;

/// The cookie holding the page's session token.
pub const COOKIE_NAME: &str = "bisman_ops_session";

/// A logged-in viewer allowed to see the ops page: an active `SUPER_ADMIN`
/// holding `admin/ops` (the same rule as `/api/v1/ops`).
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The session.
    pub session: Session,
    /// SHA-256 of the session token (to end exactly this session).
    pub token_hash: TokenHash,
    /// The token every form of this session carries.
    pub csrf: CsrfToken,
    /// The viewer's e-mail, for the page header.
    pub email: String,
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let logged_out = PageError::LoggedOut {
            next: Nav::from_path(parts.uri.path()).path(),
        };
        let token = session_token(&parts.headers).ok_or(logged_out)?;
        let session = state
            .cache
            .sessions()
            .get_session_with_fallback(&token)
            .await?
            .ok_or(PageError::LoggedOut {
                next: Nav::from_path(parts.uri.path()).path(),
            })?;
        if !may_operate(state, session.user_id, session.user_type).await? {
            return Err(PageError::Forbidden);
        }
        let email = q::user_email(&state.pool, session.tenant_id, session.user_id)
            .await?
            .unwrap_or_default();
        Ok(Viewer {
            session,
            token_hash: token.hash(),
            csrf: CsrfToken::for_session(&token),
            email,
        })
    }
}

/// Whether this user may see the ops page (an active super admin holding
/// `admin/ops`); the cache answers, PostgreSQL when it cannot; an error is
/// never a grant.
pub async fn may_operate(
    state: &AppState,
    user: UserId,
    user_type: UserType,
) -> Result<bool, ApiError> {
    let perms: Option<Arc<Permissions>> = state
        .cache
        .permissions()
        .get_user_permissions_with_fallback(user, user_type)
        .await?;
    Ok(perms.is_some_and(|p| {
        p.user_type == UserType::SuperAdmin && p.allows("admin", "ops", Action::View)
    }))
}

/// The session token in the request's cookies, if well-formed.
pub fn session_token(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .and_then(|(_, value)| SessionToken::parse(value.trim()))
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(token: &SessionToken, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={}; Path=/ops; HttpOnly; SameSite=Strict{secure}",
        token.expose()
    ))
    .expect("a hex token is a valid header value")
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("bisman_ops_session=; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The CSRF token of one session (see the module docs).
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl CsrfToken {
    /// The token of the session `token`.
    pub fn for_session(token: &SessionToken) -> Self {
        let mut h = Sha256::new();
        h.update(b"bisman-ops-csrf-v1\0");
        h.update(token.expose().as_bytes());
        Self(hex::encode(h.finalize()))
    }

    /// The value forms carry.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token (in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

/// Refuses a POST that a browser sent from another origin (module docs).
pub fn check_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(ORIGIN) {
        let authority = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest.trim_end_matches('/'));
        return match (authority, host) {
            (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => Ok(()),
            _ => Err(PageError::Csrf),
        };
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin") | Some("none") => Ok(()),
        Some(_) => Err(PageError::Csrf),
    }
}

/// Whether the browser reached us over HTTPS (per the `Origin` it sent).
pub fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get(ORIGIN)
        .is_some_and(|o| o.as_bytes().starts_with(b"https://"))
}

impl Viewer {
    /// Checks a form this viewer posted: its origin and its CSRF token.
    pub fn check_form(&self, headers: &HeaderMap, csrf: &str) -> Result<(), PageError> {
        check_origin(headers)?;
        if self.csrf.matches(csrf) {
            Ok(())
        } else {
            tracing::warn!(user = %self.session.user_id, "ops page form refused: CSRF token mismatch");
            Err(PageError::Csrf)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cookie_is_found_among_others_and_validated() {
        let token = SessionToken::generate();
        let h = headers(&[
            ("cookie", "a=b; theme=dark"),
            ("cookie", &format!("x=1; {COOKIE_NAME}={}", token.expose())),
        ]);
        assert_eq!(session_token(&h).unwrap().hash(), token.hash());
        assert!(session_token(&headers(&[("cookie", "bisman_ops_session=nothex")])).is_none());
        let set = session_cookie(&token, false);
        let set = set.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Path=/ops"] {
            assert!(set.contains(part), "{set}");
        }
        assert!(!set.contains("Secure"));
        assert!(session_cookie(&token, true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
    }

    #[test]
    fn csrf_tokens_are_per_session_and_compared_exactly() {
        let (a, b) = (SessionToken::generate(), SessionToken::generate());
        let ta = CsrfToken::for_session(&a);
        assert!(ta.matches(CsrfToken::for_session(&a).as_str()));
        assert!(!ta.matches(CsrfToken::for_session(&b).as_str()));
        assert!(!ta.matches(""));
        assert!(!ta.matches(&ta.as_str()[..63]));
        assert_ne!(ta.as_str(), a.expose());
        assert_ne!(
            ta.as_str(),
            hex::encode(Sha256::digest(a.expose().as_bytes()))
        );
    }

    #[test]
    fn origins() {
        let host = ("host", "127.0.0.1:8080");
        assert!(check_origin(&headers(&[host, ("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(check_origin(&headers(&[host, ("origin", "https://127.0.0.1:8080")])).is_ok());
        assert!(check_origin(&headers(&[host, ("origin", "http://evil.test")])).is_err());
        assert!(check_origin(&headers(&[host, ("origin", "null")])).is_err());
        assert!(check_origin(&headers(&[("origin", "http://127.0.0.1:8080")])).is_err());
        assert!(check_origin(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
        assert!(check_origin(&headers(&[host, ("sec-fetch-site", "same-origin")])).is_ok());
        assert!(check_origin(&headers(&[host])).is_ok());
    }
}
