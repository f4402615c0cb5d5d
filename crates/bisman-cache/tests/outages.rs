//! Redis failing under the cache: PostgreSQL answers, revocations still
//! hold, invalidations missed while Redis was out of reach are replayed, and
//! when nothing can answer the answer is an error, never a grant.

mod common;

use std::time::Duration;

use bisman_cache::{Cache, CacheBuilder, CacheConfig, CacheMode, NewSession, UserType};
use bisman_testkit::{redis_url, RedisServer, TcpProxy, TestDb};
use common::*;
use redis::AsyncCommands;

async fn granted(cache: &Cache, f: &Fixture) -> bool {
    cache
        .permissions()
        .has_page_permission(f.staff, UserType::Staff, "payments", "list")
        .await
        .unwrap()
}

async fn on(url: &str, db: &TestDb, prefix: &str) -> Cache {
    let c = CacheBuilder::new(
        config(CacheMode::parse(Some(url)).unwrap(), prefix),
        db.pool.clone(),
    )
    .build()
    .await
    .unwrap();
    assert!(c.wait_until_synced(Duration::from_secs(10)).await);
    c
}

#[tokio::test]
async fn redis_stopped_mid_test() {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let mut redis = RedisServer::start();
    let c = on(&redis.url(), &db, &prefix()).await;
    let s = c
        .sessions()
        .create_session(&NewSession {
            tenant_id: f.tenant,
            user_id: f.staff,
            user_type: UserType::Staff,
            ip_address: None,
            user_agent: None,
        })
        .await
        .unwrap();
    assert!(granted(&c, &f).await && granted(&c, &f).await);

    redis.stop();
    for _ in 0..5 {
        assert!(
            c.sessions()
                .get_session_with_fallback(&s.token)
                .await
                .unwrap()
                .is_some(),
            "PostgreSQL answers"
        );
        assert!(granted(&c, &f).await);
        assert!(!c
            .permissions()
            .has_page_permission(f.staff, UserType::Staff, "reports", "usage")
            .await
            .unwrap());
    }
    revoke_page(&db.pool, f.clerk, "payments", "list").await;
    let d = c
        .permissions()
        .invalidate_role_permissions(f.clerk)
        .await
        .unwrap();
    assert!(d.waited_out);
    for _ in 0..5 {
        assert!(
            !granted(&c, &f).await,
            "never grants what PostgreSQL denies"
        );
    }
    let stats = c.stats();
    assert!(stats.iter().any(|r| r.layer == "l2" && r.errors > 0));

    redis.restart();
    assert!(c.wait_until_synced(Duration::from_secs(10)).await);
    assert!(!granted(&c, &f).await);
    assert!(c
        .sessions()
        .get_session_with_fallback(&s.token)
        .await
        .unwrap()
        .is_some());
}

/// Redis out of reach but not wiped: the stale entry is still in it when it
/// comes back. The journal replay removes it before anything reads it.
#[tokio::test]
async fn invalidations_missed_while_unreachable_are_replayed() {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let p = prefix();
    let proxy = TcpProxy::start(redis_url().trim_start_matches("redis://")).await;
    let a = on(&format!("redis://{}", proxy.addr()), &db, &p).await;
    assert!(granted(&a, &f).await);
    let key = format!("{p}perm:{{u:{}}}", f.staff);
    let mut direct = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert!(direct.exists::<_, bool>(&key).await.unwrap());

    proxy.cut();
    revoke_page(&db.pool, f.clerk, "payments", "list").await;
    a.permissions()
        .invalidate_role_permissions(f.clerk)
        .await
        .unwrap();
    assert!(!granted(&a, &f).await);
    assert!(
        direct.exists::<_, bool>(&key).await.unwrap(),
        "the stale entry survived in Redis"
    );
    let journaled: i64 = sqlx::query_scalar("SELECT count(*) FROM bisman_cache_invalidations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(journaled > 0);

    // A new instance replays the journal before its first read, even while
    // the instance that journaled cannot reach Redis yet.
    let b = on(&redis_url(), &db, &p).await;
    assert!(
        !direct.exists::<_, bool>(&key).await.unwrap(),
        "replayed by the new instance"
    );
    assert!(!granted(&b, &f).await, "no stale entry is read");

    proxy.resume();
    assert!(
        a.wait_until_synced(Duration::from_secs(10)).await,
        "a is back by itself"
    );
    assert!(!granted(&a, &f).await);
}

/// Neither the cache nor PostgreSQL can answer: an error, never a grant.
#[tokio::test]
async fn nothing_answers_means_an_error() {
    let dead = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    for mode in [
        CacheMode::Disabled,
        CacheMode::Memory,
        CacheMode::parse(Some("redis://127.0.0.1:1")).unwrap(),
    ] {
        let cfg = CacheConfig {
            store_timeout: Duration::from_millis(200),
            ..config(mode.clone(), &prefix())
        };
        let c = CacheBuilder::new(cfg, dead.clone()).build().await.unwrap();
        let r = c
            .permissions()
            .has_page_permission(bisman_cache::UserId(1), UserType::Staff, "payments", "list")
            .await;
        assert!(r.is_err(), "{mode:?}: {r:?}");
        let s = c
            .sessions()
            .get_session_with_fallback(&bisman_cache::SessionToken::generate())
            .await;
        assert!(s.is_err(), "{mode:?}: {s:?}");
    }
}
