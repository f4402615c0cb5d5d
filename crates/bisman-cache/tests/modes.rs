//! The same scenario on every `REDIS_URL` mode: permission resolution,
//! caching, invalidation events, sessions, and no raw token stored anywhere.

mod common;

use bisman_cache::{Cache, InvalidationEvent, NewSession, SessionToken, UserId, UserType};
use bisman_testkit::{redis_url, RedisCluster, TestDb};
use common::*;
use redis::AsyncCommands;
use sqlx::PgPool;

async fn page(cache: &Cache, user: UserId, kind: UserType, module: &str, page: &str) -> bool {
    cache
        .permissions()
        .has_page_permission(user, kind, module, page)
        .await
        .unwrap()
}

async fn scenario(backend: Backend) {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let prefix = prefix();
    let cache = cache(backend, &db.pool, &prefix).await;
    let perms = cache.permissions();

    // Resolution rules.
    assert!(
        page(&cache, f.owner, UserType::SuperAdmin, "payments", "refunds").await,
        "super admin: every page"
    );
    assert!(
        !page(&cache, f.owner, UserType::SuperAdmin, "reports", "usage").await,
        "…of assigned modules only"
    );
    assert!(page(&cache, f.staff, UserType::Staff, "payments", "list").await);
    assert!(perms
        .has_module_permission(f.staff, UserType::Staff, "expenses")
        .await
        .unwrap());
    assert!(
        !page(&cache, f.staff, UserType::Staff, "reports", "usage").await,
        "role page of an unassigned module"
    );
    assert!(
        !page(&cache, f.staff, UserType::Staff, "payments", "refunds").await,
        "role of another tenant"
    );
    assert!(
        !perms
            .has_module_permission(f.outsider, UserType::Admin, "payments")
            .await
            .unwrap(),
        "no super admin"
    );
    assert!(perms
        .get_user_permissions_with_fallback(UserId(999_999), UserType::Staff)
        .await
        .unwrap()
        .is_none());
    let p = perms
        .get_user_permissions_with_fallback(f.staff, UserType::Admin)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p.user_type,
        UserType::Staff,
        "the database decides the type"
    );
    assert!(p.allows("expenses", "list", bisman_cache::Action::Create));
    assert!(!p.allows("payments", "list", bisman_cache::Action::Delete));

    // Revoked in PostgreSQL: caching modes keep the grant until told…
    revoke_page(&db.pool, f.clerk, "payments", "list").await;
    let still = page(&cache, f.staff, UserType::Staff, "payments", "list").await;
    assert_eq!(still, backend != Backend::Disabled, "{backend:?}");
    // …and drop it at once when told.
    perms.invalidate_role_permissions(f.clerk).await.unwrap();
    assert!(
        !page(&cache, f.staff, UserType::Staff, "payments", "list").await,
        "{backend:?}"
    );
    assert!(page(&cache, f.staff, UserType::Staff, "expenses", "list").await);

    // A role assignment removed: USER_PERMISSIONS_CHANGED.
    sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
        .bind(f.staff.0)
        .execute(&db.pool)
        .await
        .unwrap();
    cache
        .invalidate(InvalidationEvent::UserPermissionsChanged, f.staff.0)
        .await
        .unwrap();
    assert!(
        !perms
            .has_module_permission(f.staff, UserType::Staff, "expenses")
            .await
            .unwrap(),
        "{backend:?}"
    );

    // Sessions.
    let sessions = cache.sessions();
    let new = NewSession {
        tenant_id: f.tenant,
        user_id: f.owner,
        user_type: UserType::SuperAdmin,
        ip_address: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
    };
    let a = sessions.create_session(&new).await.unwrap();
    let b = sessions.create_session(&new).await.unwrap();
    for _ in 0..3 {
        let s = sessions
            .get_session_with_fallback(&a.token)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((s.user_id, s.tenant_id), (f.owner, f.tenant));
    }
    assert_eq!(sessions.list_user_sessions(f.owner).await.unwrap().len(), 2);
    assert!(sessions
        .get_session_with_fallback(&SessionToken::generate())
        .await
        .unwrap()
        .is_none());

    // Refresh rotates both tokens.
    let rotated = sessions.refresh(&b.refresh_token).await.unwrap().unwrap();
    assert!(
        sessions
            .get_session_with_fallback(&b.token)
            .await
            .unwrap()
            .is_none(),
        "{backend:?}"
    );
    assert!(sessions
        .get_session_with_fallback(&rotated.token)
        .await
        .unwrap()
        .is_some());
    assert!(
        sessions.refresh(&b.refresh_token).await.unwrap().is_none(),
        "a refresh token works once"
    );

    // Logout of one session.
    sessions.revoke_session(&a.token.hash()).await.unwrap();
    assert!(
        sessions
            .get_session_with_fallback(&a.token)
            .await
            .unwrap()
            .is_none(),
        "{backend:?}"
    );
    assert!(sessions
        .get_session_with_fallback(&rotated.token)
        .await
        .unwrap()
        .is_some());

    // No raw token is stored anywhere.
    let raw: Vec<String> = [
        &a.token,
        &a.refresh_token,
        &b.token,
        &rotated.token,
        &rotated.refresh_token,
    ]
    .iter()
    .map(|t| t.expose().to_string())
    .collect();
    assert_no_raw_tokens(&db.pool, backend, &prefix, &raw).await;

    // A password change ends every session; a deactivated super admin's
    // users lose their modules and the super admin's sessions end.
    let report = cache
        .invalidate(InvalidationEvent::UserPasswordChanged, f.owner.0)
        .await
        .unwrap();
    assert_eq!(report.sessions_ended, 1);
    assert!(
        sessions
            .get_session_with_fallback(&rotated.token)
            .await
            .unwrap()
            .is_none(),
        "{backend:?}"
    );
    let c = sessions.create_session(&new).await.unwrap();
    assert!(perms
        .has_module_permission(f.owner, UserType::SuperAdmin, "payments")
        .await
        .unwrap());
    sqlx::query("UPDATE super_admins SET is_active = false WHERE id = $1")
        .bind(f.sa.0)
        .execute(&db.pool)
        .await
        .unwrap();
    let report = cache
        .invalidate(InvalidationEvent::SuperAdminDeactivated, f.sa.0)
        .await
        .unwrap();
    assert_eq!(report.sessions_ended, 1);
    assert!(
        !perms
            .has_module_permission(f.owner, UserType::SuperAdmin, "payments")
            .await
            .unwrap(),
        "{backend:?}"
    );
    assert!(sessions
        .get_session_with_fallback(&c.token)
        .await
        .unwrap()
        .is_none());

    // Counters moved where the mode has layers.
    let stats = cache.stats();
    let total = |layer: &str, f: fn(&bisman_cache::StatsRow) -> u64| -> u64 {
        stats.iter().filter(|r| r.layer == layer).map(f).sum()
    };
    assert!(total("source", |r| r.hits) > 0);
    if backend != Backend::Disabled {
        assert!(
            total("l2", |r| r.fills) > 0 && total("l2", |r| r.invalidations) > 0,
            "{stats:?}"
        );
    }
    if matches!(
        backend,
        Backend::Redis | Backend::Cluster | Backend::Postgres
    ) {
        assert!(total("l1", |r| r.hits) > 0, "{backend:?}: {stats:?}");
    }
    cache.shutdown().await;
}

/// Scans every place a token could land: the store's keys and values, and
/// the database's tables.
async fn assert_no_raw_tokens(pool: &PgPool, backend: Backend, prefix: &str, raw: &[String]) {
    let mut texts: Vec<String> = sqlx::query_scalar(
        "SELECT t::text FROM user_sessions t UNION ALL SELECT p::text FROM permission_cache p
         UNION ALL SELECT a::text FROM audit_logs a",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let urls: Vec<String> = match backend {
        Backend::Redis => vec![redis_url()],
        Backend::Cluster => RedisCluster::shared().nodes(),
        _ => vec![],
    };
    for url in urls {
        let mut conn = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
        for key in keys {
            texts.push(key.clone());
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            match kind.as_str() {
                "string" => texts.push(conn.get(&key).await.unwrap()),
                "set" => texts.extend(conn.smembers::<_, Vec<String>>(&key).await.unwrap()),
                _ => {}
            }
        }
    }
    assert!(!texts.is_empty());
    for t in &texts {
        for r in raw {
            assert!(!t.contains(r.as_str()), "a raw token was stored: {t}");
        }
    }
}

#[tokio::test]
async fn disabled() {
    scenario(Backend::Disabled).await;
}

#[tokio::test]
async fn memory() {
    scenario(Backend::Memory).await;
}

#[tokio::test]
async fn redis() {
    scenario(Backend::Redis).await;
}

#[tokio::test]
async fn redis_cluster() {
    scenario(Backend::Cluster).await;
}

#[tokio::test]
async fn postgres_table() {
    scenario(Backend::Postgres).await;
}
