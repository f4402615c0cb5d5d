//! The stale-fill race and single-flight.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bisman_cache::{CacheBuilder, Namespace, UserType};
use bisman_testkit::TestDb;
use common::*;
use futures::FutureExt;
use redis::AsyncCommands;
use tokio::sync::oneshot;

/// A load that read the old grant, held open across a revocation, must not
/// put it back in any layer.
#[tokio::test]
async fn a_load_older_than_the_invalidation_never_lands() {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let p = prefix();
    let (loaded_tx, loaded_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let gate = Arc::new(Mutex::new(Some((loaded_tx, release_rx))));
    let hook: bisman_cache::SourceHook = Arc::new(move |ns| {
        let gate = gate.clone();
        async move {
            if ns != Namespace::UserPermissions {
                return;
            }
            let taken = gate.lock().unwrap().take();
            if let Some((loaded, release)) = taken {
                let _ = loaded.send(());
                let _ = release.await;
            }
        }
        .boxed()
    });
    let slow = CacheBuilder::new(config(Backend::Redis.mode(), &p), db.pool.clone())
        .source_hook(hook)
        .build()
        .await
        .unwrap();
    assert!(slow.wait_until_synced(Duration::from_secs(10)).await);
    let admin = cache(Backend::Redis, &db.pool, &p).await;

    let reader = slow.clone();
    let task = tokio::spawn(async move {
        reader
            .permissions()
            .has_page_permission(f.staff, UserType::Staff, "payments", "list")
            .await
            .unwrap()
    });
    loaded_rx.await.unwrap(); // it read the grant from PostgreSQL and is about to cache it
    revoke_page(&db.pool, f.clerk, "payments", "list").await;
    admin
        .permissions()
        .invalidate_role_permissions(f.clerk)
        .await
        .unwrap();
    release_tx.send(()).unwrap();
    assert!(
        task.await.unwrap(),
        "the overlapping read may see the old value"
    );

    // Nothing stale was stored: not in Redis, not in either near-cache.
    let mut conn = redis::Client::open(bisman_testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<String> = conn
        .get(format!("{p}perm:{{u:{}}}", f.staff))
        .await
        .unwrap();
    assert!(
        stored.as_deref().is_none_or(|v| !v.contains("\"list\"")),
        "stale value in Redis: {stored:?}"
    );
    for c in [&slow, &admin] {
        assert!(!c
            .permissions()
            .has_page_permission(f.staff, UserType::Staff, "payments", "list")
            .await
            .unwrap());
    }
}

async fn one_load(backend: Backend) {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = loads.clone();
    let hook: bisman_cache::SourceHook = Arc::new(move |ns| {
        let counted = counted.clone();
        async move {
            if ns == Namespace::UserPermissions {
                counted.fetch_add(1, Ordering::SeqCst);
                // Widen the window in which the other readers arrive.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        .boxed()
    });
    let cache = CacheBuilder::new(config(backend.mode(), &prefix()), db.pool.clone())
        .source_hook(hook)
        .build()
        .await
        .unwrap();
    assert!(cache.wait_until_synced(Duration::from_secs(10)).await);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = cache.clone();
            tokio::spawn(async move {
                c.permissions()
                    .has_page_permission(f.staff, UserType::Staff, "expenses", "list")
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap());
    }
    assert_eq!(
        loads.load(Ordering::SeqCst),
        1,
        "{backend:?}: concurrent misses made more than one load"
    );
}

#[tokio::test]
async fn concurrent_misses_make_one_load_memory() {
    one_load(Backend::Memory).await;
}

#[tokio::test]
async fn concurrent_misses_make_one_load_redis() {
    one_load(Backend::Redis).await;
}

#[tokio::test]
async fn concurrent_misses_make_one_load_disabled() {
    one_load(Backend::Disabled).await;
}
