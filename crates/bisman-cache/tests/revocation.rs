//! Revocation across instances: after the revoking call returns, no
//! instance grants what was revoked; also while one instance's subscription
//! is cut or silently stalled.

mod common;

use std::time::Duration;

use bisman_cache::{Cache, CacheBuilder, NewSession, UserType};
use bisman_testkit::{redis_url, TcpProxy, TestDb};
use common::*;

async fn granted(cache: &Cache, f: &Fixture) -> bool {
    cache
        .permissions()
        .has_page_permission(f.staff, UserType::Staff, "payments", "list")
        .await
        .unwrap()
}

fn l1_hits(cache: &Cache) -> u64 {
    cache
        .stats()
        .iter()
        .filter(|r| r.layer == "l1")
        .map(|r| r.hits)
        .sum()
}

async fn across_instances(backend: Backend) {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let p = prefix();
    let caches = [
        cache(backend, &db.pool, &p).await,
        cache(backend, &db.pool, &p).await,
        cache(backend, &db.pool, &p).await,
    ];
    for c in &caches {
        assert!(granted(c, &f).await);
        let before = l1_hits(c);
        assert!(granted(c, &f).await);
        assert!(l1_hits(c) > before, "served from the near-cache");
    }
    revoke_page(&db.pool, f.clerk, "payments", "list").await;
    let delivery = caches[0]
        .permissions()
        .invalidate_role_permissions(f.clerk)
        .await
        .unwrap();
    assert_eq!(delivery.acknowledged, 2, "{delivery:?}");
    for c in &caches {
        assert!(
            !granted(c, &f).await,
            "{backend:?}: an instance still grants after the revoke returned"
        );
    }

    // Sessions: a logout through one instance ends the session on all.
    let s = caches[1]
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
    for c in &caches {
        assert!(c
            .sessions()
            .get_session_with_fallback(&s.token)
            .await
            .unwrap()
            .is_some());
    }
    caches[2]
        .sessions()
        .revoke_session(&s.token.hash())
        .await
        .unwrap();
    for c in &caches {
        assert!(
            c.sessions()
                .get_session_with_fallback(&s.token)
                .await
                .unwrap()
                .is_none(),
            "{backend:?}"
        );
    }
}

#[tokio::test]
async fn across_instances_on_redis() {
    across_instances(Backend::Redis).await;
}

#[tokio::test]
async fn across_instances_on_redis_cluster() {
    across_instances(Backend::Cluster).await;
}

#[tokio::test]
async fn across_instances_on_the_postgres_table() {
    across_instances(Backend::Postgres).await;
}

/// Instance `b` reaches Redis only through a proxy the test controls.
async fn pair(db: &TestDb, proxy: &TcpProxy) -> (Cache, Cache) {
    let p = prefix();
    let a = cache(Backend::Redis, &db.pool, &p).await;
    let mode = bisman_cache::CacheMode::parse(Some(&format!("redis://{}", proxy.addr()))).unwrap();
    let b = CacheBuilder::new(config(mode, &p), db.pool.clone())
        .build()
        .await
        .unwrap();
    assert!(b.wait_until_synced(Duration::from_secs(10)).await);
    (a, b)
}

fn upstream() -> String {
    redis_url().trim_start_matches("redis://").to_string()
}

#[tokio::test]
async fn while_one_subscription_is_cut() {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let proxy = TcpProxy::start(&upstream()).await;
    let (a, b) = pair(&db, &proxy).await;
    assert!(granted(&a, &f).await && granted(&b, &f).await);
    assert!(granted(&b, &f).await);

    proxy.cut();
    revoke_page(&db.pool, f.clerk, "payments", "list").await;
    let delivery = a
        .permissions()
        .invalidate_role_permissions(f.clerk)
        .await
        .unwrap();
    assert!(
        delivery.acknowledged == 0 && delivery.waited_out,
        "{delivery:?}"
    );
    assert!(!granted(&a, &f).await);
    assert!(
        !granted(&b, &f).await,
        "the cut instance reads through to PostgreSQL"
    );

    proxy.resume();
    assert!(
        b.wait_until_synced(Duration::from_secs(10)).await,
        "it resubscribes by itself"
    );
    assert!(!granted(&b, &f).await);
}

#[tokio::test]
async fn while_one_subscription_is_silently_stalled() {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let proxy = TcpProxy::start(&upstream()).await;
    let (a, b) = pair(&db, &proxy).await;
    assert!(granted(&b, &f).await && granted(&b, &f).await);

    // Packets vanish; no connection closes: b cannot know.
    proxy.stall();
    revoke_page(&db.pool, f.clerk, "payments", "list").await;
    let delivery = a
        .permissions()
        .invalidate_role_permissions(f.clerk)
        .await
        .unwrap();
    assert_eq!(delivery.unacknowledged, 1, "{delivery:?}");
    assert!(delivery.waited_out, "it waited out b's lease");
    assert!(!granted(&a, &f).await);
    assert!(
        !granted(&b, &f).await,
        "b's lease ran out while the revoke waited"
    );

    proxy.resume();
    assert!(b.wait_until_synced(Duration::from_secs(10)).await);
    assert!(!granted(&b, &f).await);
}
