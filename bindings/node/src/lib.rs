//! The native half of the Node.js package `@bisman/cache`: `bisman-cache`'s
//! session and permission caches, in the ERP backend's own process.
//!
//! Every function here is a thin layer over `bisman-cache`'s public API:
//! check the arguments ([`args`]), get the process's cache ([`instance`]),
//! call the Rust method, shape the answer ([`convert`]), and hand it to
//! JavaScript ([`bridge`]). The near-cache, single-flight, generation-guarded
//! fills, the subscription lease and acknowledged invalidation are the Rust
//! ones; nothing of them is re-implemented here or in JavaScript.
//!
//! The package's JavaScript (`index.js`) wraps these functions into the
//! plan's objects (`sessionCache`, `permissionCache`, `invalidate`, `redis`)
//! as `async` functions, so that an argument error thrown here arrives as a
//! rejected promise like every other error.
//!
//! Panics: the argument checks run under [`bridge::guard`] and the cache's
//! work under the bridge's `catch_unwind`, so a panic is a `Failure` with
//! code `INTERNAL`. Every export is also `#[napi(catch_unwind)]`, so that a
//! panic anywhere else in a call (napi-rs's own conversions) is thrown as an
//! error instead of unwinding into Node.js, which would abort the process.

pub mod args;
pub mod bridge;
pub mod convert;
pub mod failure;
pub mod instance;
pub mod settings;

use std::collections::HashMap;

use bisman_cache::{RoleId, SuperAdminId, UserId};
use napi::bindgen_prelude::Unknown;
use napi::Env;
use napi_derive::napi;
use serde_json::Value;

use crate::bridge::{guard, now, settle, Js};
use crate::failure::{Code, Failure};

/// Checks arguments with panics caught, or answers the call with the failure.
macro_rules! checked {
    ($env:expr, $body:expr) => {
        match guard(|| $body) {
            Ok(v) => v,
            Err(f) => return now(&$env, Err(f)),
        }
    };
}

/// The environment variables the package reads (their values are handed
/// over by [`provide_environment`] on first use).
#[napi(catch_unwind)]
pub fn environment_variables() -> Vec<&'static str> {
    settings::variables()
}

/// Records the environment variables' values for the first opening (the
/// JavaScript side reads them from `process.env`, so that Node's own view
/// of the environment is the one used).
#[napi(catch_unwind)]
pub fn provide_environment(env: Env, vars: Unknown<'_>) -> napi::Result<Js> {
    let vars = checked!(env, env_map(&vars));
    instance::provide_environment(vars);
    now(&env, Ok(Value::Null))
}

/// `configure(options)`: options over the environment, checked now, used
/// when the cache is first used.
#[napi(catch_unwind)]
pub fn configure(env: Env, options: Unknown<'_>, vars: Unknown<'_>) -> napi::Result<Js> {
    let (options, vars) = checked!(
        env,
        Ok((args::options(&options, "options")?, env_map(&vars)?))
    );
    let done = guard(|| instance::configure(&options, vars));
    now(&env, done.map(|()| Value::Null))
}

fn env_map(vars: &Unknown<'_>) -> Result<HashMap<String, String>, Failure> {
    Ok(args::options(vars, "environment")?
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect())
}

/// `close()`: leaves the invalidation bus (so invalidations stop waiting for
/// this process) and closes the database pool.
#[napi(catch_unwind)]
pub fn close(env: Env) -> napi::Result<Js> {
    settle(&env, async {
        instance::close().await;
        Ok(Value::Null)
    })
}

/// `sessionCache.getSessionWithFallback(token)`: the live session of a
/// token, or `null`.
#[napi(catch_unwind)]
pub fn get_session_with_fallback(env: Env, token: Unknown<'_>) -> napi::Result<Js> {
    let token = checked!(env, args::presented_token(&token, "token"));
    settle(&env, async move {
        let Some(token) = token else {
            return Ok(Value::Null);
        };
        let i = instance::current().await?;
        let s = i.cache.sessions().get_session_with_fallback(&token).await?;
        Ok(s.as_ref().map_or(Value::Null, convert::session))
    })
}

/// `sessionCache.setSession(tokenHash, session)`: caches the live session
/// `user_sessions` holds for `tokenHash`, which must belong to
/// `session.user_id`; the row decides everything else. The session, or
/// `null` when no live session has that hash.
#[napi(catch_unwind)]
pub fn set_session(env: Env, token_hash: Unknown<'_>, session: Unknown<'_>) -> napi::Result<Js> {
    let (hash, claimed) = checked!(env, {
        let hash = args::token_hash(&token_hash, "tokenHash")?;
        let session = args::options(&session, "session")?;
        Ok((hash, claimed_session(&session)?))
    });
    settle(&env, async move {
        let i = instance::current().await?;
        let Some(s) = i.cache.sessions().get_session_by_hash(hash).await? else {
            return Ok(Value::Null);
        };
        if let Some(user) = claimed {
            if s.user_id.0 != user {
                return Err(Failure::invalid(format!(
                    "session.user_id is {user}, but the session with this tokenHash belongs to another user"
                )));
            }
        }
        Ok(convert::session(&s))
    })
}

/// The `user_id` a `setSession` caller claims (checked against the row);
/// `expires_at`, when given, must at least be a date (the row's expiry is
/// the one that counts).
fn claimed_session(session: &serde_json::Map<String, Value>) -> Result<Option<i32>, Failure> {
    let user = match session.get("user_id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(args::id_from_f64(
            n.as_f64().unwrap_or(f64::NAN),
            "session.user_id",
        )?),
        Some(_) => {
            return Err(Failure::invalid(
                "`session.user_id` must be a number (an integer id)",
            ))
        }
    };
    match session.get("expires_at") {
        None | Some(Value::Null) => {}
        Some(Value::String(s))
            if chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.len() <= 64 => {}
        Some(_) => return Err(Failure::invalid(
            "`session.expires_at` must be an ISO 8601 date-time string like 2024-12-05T00:00:00Z",
        )),
    }
    Ok(user)
}

/// `sessionCache.setSessionForToken(token)`: `setSession` for a caller that
/// holds the token itself: the package hashes it, so the hash cannot be
/// computed wrongly. The session, or `null`.
#[napi(catch_unwind)]
pub fn set_session_for_token(env: Env, token: Unknown<'_>) -> napi::Result<Js> {
    let token = checked!(env, args::token(&token, "token"));
    settle(&env, async move {
        let i = instance::current().await?;
        let s = i.cache.sessions().get_session_by_hash(token.hash()).await?;
        Ok(s.as_ref().map_or(Value::Null, convert::session))
    })
}

/// `sessionCache.hashToken(token)`: the SHA-256 of a token as
/// `user_sessions.token_hash` holds it (what `setSession` expects).
#[napi(catch_unwind)]
pub fn hash_token(env: Env, token: Unknown<'_>) -> napi::Result<Js> {
    let token = checked!(env, args::token(&token, "token"));
    now(&env, Ok(Value::from(token.hash().to_hex())))
}

/// `sessionCache.revokeSession(token)`: logs one session out: revoked in
/// PostgreSQL, dropped from every cache of every instance before this
/// returns. The user's id when the session was live, else `null`.
#[napi(catch_unwind)]
pub fn revoke_session(env: Env, token: Unknown<'_>) -> napi::Result<Js> {
    let token = checked!(env, args::token(&token, "token"));
    settle(&env, async move {
        let i = instance::current().await?;
        let user = i.cache.sessions().revoke_session(&token.hash()).await?;
        Ok(user.map_or(Value::Null, |u| Value::from(u.0)))
    })
}

/// `sessionCache.invalidateUserSessions(userId, { exceptToken })`: ends every
/// session of the user (but the one of `exceptToken`), in PostgreSQL and in
/// every cache. How many ended.
#[napi(catch_unwind)]
pub fn invalidate_user_sessions(
    env: Env,
    user_id: Unknown<'_>,
    options: Unknown<'_>,
) -> napi::Result<Js> {
    let (user, except) = checked!(env, {
        let user = args::id(&user_id, "userId")?;
        let options = args::options(&options, "options")?;
        let except = match options.get("exceptToken") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(
                bisman_cache::SessionToken::parse(t)
                    .ok_or_else(|| {
                        Failure::invalid(
                            "`options.exceptToken` must be a session token: 64 lowercase hexadecimal digits",
                        )
                    })?
                    .hash(),
            ),
            Some(_) => return Err(Failure::invalid("`options.exceptToken` must be a string")),
        };
        if let Some(unknown) = options.keys().find(|k| *k != "exceptToken") {
            return Err(Failure::invalid(format!(
                "unknown option `{unknown}`; the only option is exceptToken"
            )));
        }
        Ok((user, except))
    });
    settle(&env, async move {
        let i = instance::current().await?;
        let n = i
            .cache
            .sessions()
            .invalidate_user_sessions(UserId(user), except.as_ref())
            .await?;
        Ok(Value::from(n))
    })
}

/// `permissionCache.getUserPermissionsWithFallback(userId, userType)`: the
/// user's effective permissions (the body of `GET /api/v1/me/permissions`),
/// or `null` for an unknown user.
#[napi(catch_unwind)]
pub fn get_user_permissions_with_fallback(
    env: Env,
    user_id: Unknown<'_>,
    user_type: Unknown<'_>,
) -> napi::Result<Js> {
    let (user, claimed) = checked!(env, {
        Ok((
            args::id(&user_id, "userId")?,
            args::user_type(&user_type, "userType")?,
        ))
    });
    settle(&env, async move {
        let i = instance::current().await?;
        let p = i
            .cache
            .permissions()
            .get_user_permissions_with_fallback(UserId(user), claimed)
            .await?;
        Ok(p.as_deref().map_or(Value::Null, convert::permissions))
    })
}

/// `permissionCache.hasModulePermission(userId, userType, module)`.
#[napi(catch_unwind)]
pub fn has_module_permission(
    env: Env,
    user_id: Unknown<'_>,
    user_type: Unknown<'_>,
    module: Unknown<'_>,
) -> napi::Result<Js> {
    let (user, claimed, module) = checked!(env, {
        Ok((
            args::id(&user_id, "userId")?,
            args::user_type(&user_type, "userType")?,
            args::key(&module, "module")?,
        ))
    });
    settle(&env, async move {
        let i = instance::current().await?;
        let ok = i
            .cache
            .permissions()
            .has_module_permission(UserId(user), claimed, &module)
            .await?;
        Ok(Value::Bool(ok))
    })
}

/// `permissionCache.hasPagePermission(userId, userType, module, page)`:
/// whether any action on the page is allowed.
#[napi(catch_unwind)]
pub fn has_page_permission(
    env: Env,
    user_id: Unknown<'_>,
    user_type: Unknown<'_>,
    module: Unknown<'_>,
    page: Unknown<'_>,
) -> napi::Result<Js> {
    let (user, claimed, module, page) = checked!(env, {
        Ok((
            args::id(&user_id, "userId")?,
            args::user_type(&user_type, "userType")?,
            args::key(&module, "module")?,
            args::key(&page, "page")?,
        ))
    });
    settle(&env, async move {
        let i = instance::current().await?;
        let ok = i
            .cache
            .permissions()
            .has_page_permission(UserId(user), claimed, &module, &page)
            .await?;
        Ok(Value::Bool(ok))
    })
}

/// `permissionCache.hasActionPermission(userId, userType, module, page,
/// action)`: whether one action is allowed (what `GET
/// /api/v1/permissions/check` answers).
#[napi(catch_unwind)]
pub fn has_action_permission(
    env: Env,
    user_id: Unknown<'_>,
    user_type: Unknown<'_>,
    module: Unknown<'_>,
    page: Unknown<'_>,
    action: Unknown<'_>,
) -> napi::Result<Js> {
    let (user, claimed, module, page, action) = checked!(env, {
        Ok((
            args::id(&user_id, "userId")?,
            args::user_type(&user_type, "userType")?,
            args::key(&module, "module")?,
            args::key(&page, "page")?,
            args::action(&action, "action")?,
        ))
    });
    settle(&env, async move {
        let i = instance::current().await?;
        let ok = i
            .cache
            .permissions()
            .has_action(UserId(user), claimed, &module, &page, action)
            .await?;
        Ok(Value::Bool(ok))
    })
}

/// `permissionCache.invalidateUserPermissions(userId)`: after the user's
/// roles changed (committed); returns once no instance serves the old
/// permissions. How the other instances were reached.
#[napi(catch_unwind)]
pub fn invalidate_user_permissions(env: Env, user_id: Unknown<'_>) -> napi::Result<Js> {
    let user = checked!(env, args::id(&user_id, "userId"));
    settle(&env, async move {
        let i = instance::current().await?;
        let d = i
            .cache
            .permissions()
            .invalidate_user_permissions(UserId(user))
            .await?;
        Ok(convert::to_value(&d))
    })
}

/// `permissionCache.invalidateSuperAdminPermissions(superAdminId)`: after a
/// super admin's modules or status changed; reaches every user under them.
#[napi(catch_unwind)]
pub fn invalidate_super_admin_permissions(
    env: Env,
    super_admin_id: Unknown<'_>,
) -> napi::Result<Js> {
    let sa = checked!(env, args::id(&super_admin_id, "superAdminId"));
    settle(&env, async move {
        let i = instance::current().await?;
        let d = i
            .cache
            .permissions()
            .invalidate_super_admin_permissions(SuperAdminId(sa))
            .await?;
        Ok(convert::to_value(&d))
    })
}

/// `permissionCache.invalidateRolePermissions(roleId)`: after a role's page
/// permissions changed; reaches every user holding the role.
#[napi(catch_unwind)]
pub fn invalidate_role_permissions(env: Env, role_id: Unknown<'_>) -> napi::Result<Js> {
    let role = checked!(env, args::id(&role_id, "roleId"));
    settle(&env, async move {
        let i = instance::current().await?;
        let d = i
            .cache
            .permissions()
            .invalidate_role_permissions(RoleId(role))
            .await?;
        Ok(convert::to_value(&d))
    })
}

/// `invalidate(event, id)`: one of spec §4's five events, after the change
/// committed; returns once no instance serves what it revoked.
#[napi(catch_unwind)]
pub fn invalidate(env: Env, event: Unknown<'_>, id: Unknown<'_>) -> napi::Result<Js> {
    let (event, id) = checked!(
        env,
        Ok((args::event(&event, "event")?, args::id(&id, "id")?))
    );
    settle(&env, async move {
        let i = instance::current().await?;
        let report = i.cache.invalidate(event, id).await?;
        Ok(convert::to_value(&report))
    })
}

/// `redis.info(section)`: the shared store's `keyspace_hits` and
/// `keyspace_misses` (summed over a cluster's nodes) in Redis's `INFO
/// stats` text format. Only the `stats` section exists.
#[napi(catch_unwind)]
pub fn redis_info(env: Env, section: Unknown<'_>) -> napi::Result<Js> {
    checked!(env, {
        let undefined = section
            .get_type()
            .is_ok_and(|t| t == napi::ValueType::Undefined);
        if !undefined && !args::string(&section, "section")?.eq_ignore_ascii_case("stats") {
            return Err(Failure::invalid(
                "`section` must be 'stats': the package reports the shared store's keyspace_hits and keyspace_misses",
            ));
        }
        Ok(())
    });
    settle(&env, async move {
        let stats = server_stats().await?;
        Ok(Value::from(format!(
            "# Stats\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
            stats.keyspace_hits, stats.keyspace_misses
        )))
    })
}

/// `redis.stats()`: the same counters as an object.
#[napi(catch_unwind)]
pub fn redis_stats(env: Env) -> napi::Result<Js> {
    settle(&env, async move {
        Ok(convert::to_value(&server_stats().await?))
    })
}

async fn server_stats() -> Result<bisman_cache::store::ServerStats, Failure> {
    let i = instance::current().await?;
    i.cache.server_stats().await?.ok_or_else(|| {
        Failure::new(
            Code::NotSupported,
            format!(
                "REDIS_URL={} keeps no server hit counters (they exist with Redis and memory); stats() has the cache's own",
                i.cache.config().mode.label()
            ),
        )
    })
}

/// `stats()`: hits, misses, fills, invalidations and errors per namespace
/// and layer, as `bisman cache stats` shows them.
#[napi(catch_unwind)]
pub fn stats(env: Env) -> napi::Result<Js> {
    settle(&env, async move {
        let i = instance::current().await?;
        Ok(convert::to_value(&i.cache.stats()))
    })
}

/// `health()`: whether the store answers and the near-cache may serve.
#[napi(catch_unwind)]
pub fn health(env: Env) -> napi::Result<Js> {
    settle(&env, async move {
        let i = instance::current().await?;
        Ok(convert::to_value(&i.cache.health().await))
    })
}

/// For the package's own tests: panics inside a call while its arguments
/// are checked (`"check"`), on its first poll (`"sync"`) or on the runtime
/// after an await (`"async"`), to show that a panic is an error with code
/// `INTERNAL`, never a crash. Not part of the package's API.
#[napi(js_name = "__panicForTests", catch_unwind)]
pub fn panic_for_tests(env: Env, when: Unknown<'_>) -> napi::Result<Js> {
    let when = checked!(env, {
        let when = args::string(&when, "when")?;
        if when == "check" {
            panic!("a deliberate panic while checking arguments");
        }
        Ok(when)
    });
    settle(&env, async move {
        if when == "async" {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            // Unwinds like a panic without printing one (the tests make many).
            std::panic::resume_unwind(Box::new(format!(
                "a deliberate panic in the cache's work ({when})"
            )));
        }
        deliberate_panic(&when)
    })
}

fn deliberate_panic(when: &str) -> bridge::Outcome {
    panic!("a deliberate panic in the cache's work ({when})")
}
