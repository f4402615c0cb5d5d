//! Without replicas nothing changes; and the write-position memory's one
//! rule (positions only move forward) under concurrency, on every store.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use bisman_cache::store::{PostgresStore, RedisStore, Store};
use bisman_cache::SessionToken;
use bisman_db::replicas::Lsn;
use bisman_server::routing::WriteMemory;
use bisman_testkit::TestDb;
use rand::{Rng, SeedableRng};

use crate::common::*;

/// The service with no replica configured: no `Bisman-Lsn` on writes, the
/// header ignored on reads (not even validated), no replica figures, and
/// the ops page says none is configured.
#[tokio::test]
async fn no_replica_configured_behaves_as_before() {
    let db = TestDb::migrated().await;
    bisman_server::demo::seed(&db.pool).await.unwrap();
    let mut c = config(
        &bisman_testkit::redis_prefix(),
        &[],
        std::time::Duration::from_secs(1),
    );
    c.cache.redis_url = Some("memory".into());
    let app = Instance::start(&c, db.pool.clone()).await;
    assert!(app.service.state().db.replicas().is_none());
    let staff = app.login("staff@demo.test").await;
    let threads = app.get("/api/v1/threads", &staff).await;
    let thread = threads.body[0]["id"].as_str().unwrap().to_string();
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/threads/{thread}/messages"),
            Some(&staff),
            Some(serde_json::json!({"content": "no replicas"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.headers.get("bisman-lsn").is_none());
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(app
        .page_ids(&staff, &thread, &[("bisman-lsn", "not a position")])
        .await
        .contains(&id));
    let ready = app.call(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert!(ready.body.get("replicas").is_none(), "{}", ready.body);
    let metrics = app
        .call(Method::GET, "/metrics", None, None, &[])
        .await
        .text;
    assert!(!metrics.contains("bisman_replica") && !metrics.contains("bisman_db_reads_total"));
    let owner = app.login("owner@demo.test").await;
    let page = app
        .call(
            Method::GET,
            "/ops/replicas",
            None,
            None,
            &[
                ("host", "ops.test"),
                ("cookie", &format!("bisman_ops_session={owner}")),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("No read replicas are configured"));
}

/// Two instances' memories over one store, 64 writes of one session at
/// once with random positions, 30 rounds: what is left is the largest,
/// as seen by a third instance that made none of them.
async fn only_forward(store: Arc<dyn Store>, label: &str) {
    let prefix = bisman_testkit::redis_prefix();
    let ttl = std::time::Duration::from_secs(60);
    let one = WriteMemory::with_store(Some(store.clone()), &prefix, ttl);
    let two = WriteMemory::with_store(Some(store.clone()), &prefix, ttl);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(14);
    for round in 0..30 {
        let session = SessionToken::generate().hash();
        let lsns: Vec<Lsn> = (0..64)
            .map(|_| Lsn(rng.random_range(1..1_000_000)))
            .collect();
        let writes = lsns.iter().enumerate().map(|(i, lsn)| {
            let m = if i % 2 == 0 { one.clone() } else { two.clone() };
            async move { m.remember(&session, *lsn).await }
        });
        for r in futures::future::join_all(writes).await {
            r.unwrap_or_else(|e| panic!("{label}: {e}"));
        }
        let third = WriteMemory::with_store(Some(store.clone()), &prefix, ttl);
        let max = lsns.iter().max().copied();
        assert_eq!(
            third.recall(&session).await.unwrap(),
            max,
            "{label}, round {round}"
        );
        // A smaller position later does not move it back.
        third.remember(&session, Lsn(0)).await.unwrap();
        assert_eq!(
            one.recall(&session).await.unwrap(),
            max,
            "{label}, round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_positions_only_move_forward_on_redis() {
    let store = RedisStore::connect(
        &bisman_testkit::redis_url(),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    only_forward(Arc::new(store), "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_positions_only_move_forward_in_the_postgres_store() {
    let db = TestDb::migrated().await;
    only_forward(
        Arc::new(PostgresStore::new(db.new_pool(16).await)),
        "postgres",
    )
    .await;
}

/// Without a shared store the memory is this process's own, and forward only.
#[tokio::test]
async fn write_positions_without_a_shared_store_stay_local() {
    let m = WriteMemory::with_store(None, "x:", std::time::Duration::from_secs(60));
    let session = SessionToken::generate().hash();
    assert_eq!(m.recall(&session).await.unwrap(), None);
    m.remember(&session, Lsn(10)).await.unwrap();
    m.remember(&session, Lsn(5)).await.unwrap();
    assert_eq!(m.recall(&session).await.unwrap(), Some(Lsn(10)));
    let other = WriteMemory::with_store(None, "x:", std::time::Duration::from_secs(60));
    assert_eq!(other.recall(&session).await.unwrap(), None);
}
