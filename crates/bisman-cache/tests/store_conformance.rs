//! One conformance suite for every shared store and every bus: memory,
//! Redis, Redis Cluster (started by the test itself), PostgreSQL.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bisman_cache::bus::{Bus, BusMessage, LocalBus, PostgresBus, RedisBus};
use bisman_cache::keys::Keys;
use bisman_cache::store::{ClusterStore, MemoryStore, PostgresStore, RedisStore, Store};
use bisman_cache::{Scope, UserId};
use bisman_testkit::{redis_prefix, redis_url, RedisCluster, TestDb};
use futures::StreamExt;

async fn store_suite(store: &dyn Store, prefix: &str) {
    let k = Keys::new(prefix);
    let scope = Scope::User(UserId(7));
    let (key, gen) = (k.value_of(scope), k.generation(scope));
    let ttl = Duration::from_secs(60);

    assert_eq!(store.get(&key).await.unwrap(), None);
    assert_eq!(store.get_guarded(&gen, &key).await.unwrap(), (0, None));
    store.set(&key, r#"{"a":1}"#, ttl).await.unwrap();
    let got = store.get(&key).await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&got).unwrap(),
        serde_json::json!({"a": 1})
    );

    // Set-if-absent and set-if-present.
    assert!(!store.set_nx(&key, r#"{"a":2}"#, ttl).await.unwrap());
    assert!(store.set_xx(&key, r#"{"a":3}"#, ttl).await.unwrap());
    let other = format!("{prefix}sess:absent");
    assert!(!store.set_xx(&other, "1", ttl).await.unwrap());
    assert!(store.set_nx(&other, "1", ttl).await.unwrap());

    // Generation-guarded fills: a fill from before a bump never lands.
    let (g0, _) = store.get_guarded(&gen, &key).await.unwrap();
    assert_eq!(
        store
            .bump(&gen, std::slice::from_ref(&key), ttl)
            .await
            .unwrap(),
        g0 + 1
    );
    assert_eq!(
        store.get(&key).await.unwrap(),
        None,
        "bump deletes what it guards"
    );
    assert!(!store
        .set_if_generation(&gen, g0, &key, r#""stale""#, ttl)
        .await
        .unwrap());
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert!(store
        .set_if_generation(&gen, g0 + 1, &key, r#""fresh""#, ttl)
        .await
        .unwrap());
    assert_eq!(
        store.get_guarded(&gen, &key).await.unwrap(),
        (g0 + 1, Some(r#""fresh""#.to_string()))
    );

    // Sets.
    let set = k.user_sessions(UserId(7));
    store.set_add(&set, "a", ttl).await.unwrap();
    store.set_add(&set, "b", ttl).await.unwrap();
    store.set_add(&set, "a", ttl).await.unwrap();
    let members: HashSet<String> = store.set_members(&set).await.unwrap().into_iter().collect();
    assert_eq!(members, HashSet::from(["a".to_string(), "b".to_string()]));
    store.set_remove(&set, "a").await.unwrap();
    assert_eq!(
        store.set_members(&set).await.unwrap(),
        vec!["b".to_string()]
    );

    // Delete across slots, and expiry.
    store
        .delete(&[key.clone(), other.clone(), set.clone()])
        .await
        .unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert!(store.set_members(&set).await.unwrap().is_empty());
    store
        .set(&other, "1", Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.get(&other).await.unwrap(), None, "expired");

    store.ping().await.unwrap();
    store.server_stats().await.unwrap();
}

async fn bus_suite(make: impl Fn() -> Arc<dyn Bus>) {
    let (a, b) = (make(), make());
    let mut sa = a.subscribe().await.unwrap();
    let mut sb = b.subscribe().await.unwrap();
    // Subscriptions settle before publishing.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent: Vec<String> = (0..30)
        .map(|i| {
            BusMessage::Ping {
                from: if i % 2 == 0 { "a".into() } else { "b".into() },
                seq: i,
            }
            .encode()
        })
        .collect();
    for (i, m) in sent.iter().enumerate() {
        let bus = if i % 2 == 0 { &a } else { &b };
        bus.publish(m.clone()).await.unwrap();
    }
    for stream in [&mut sa, &mut sb] {
        let mut got = Vec::new();
        while got.len() < sent.len() {
            let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("message arrives");
            got.push(next.unwrap());
        }
        assert_eq!(
            got, sent,
            "every subscriber sees every message in one order"
        );
    }

    a.register("one", Duration::from_secs(30)).await.unwrap();
    b.register("two", Duration::from_millis(300)).await.unwrap();
    let live: HashSet<String> = a.instances().await.unwrap().into_iter().collect();
    assert!(live.contains("one") && live.contains("two"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let live: HashSet<String> = b.instances().await.unwrap().into_iter().collect();
    assert!(live.contains("one") && !live.contains("two"), "{live:?}");
    a.deregister("one").await.unwrap();
    assert!(!b.instances().await.unwrap().contains(&"one".to_string()));
}

#[tokio::test]
async fn memory() {
    store_suite(&MemoryStore::new(), "m:").await;
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new());
    bus_suite(|| bus.clone()).await;
}

#[tokio::test]
async fn redis() {
    let prefix = redis_prefix();
    let store = RedisStore::connect(&redis_url(), Duration::from_secs(2)).unwrap();
    store_suite(&store, &prefix).await;
    let k = Keys::new(&prefix);
    bus_suite(|| {
        Arc::new(RedisBus::single(
            &redis_url(),
            k.bus_channel(),
            k.instances(),
            Duration::from_secs(2),
        )) as Arc<dyn Bus>
    })
    .await;
}

#[tokio::test]
async fn redis_cluster() {
    let cluster = RedisCluster::shared();
    let prefix = redis_prefix();
    let store = ClusterStore::connect(&cluster.nodes(), Duration::from_secs(2)).unwrap();
    store_suite(&store, &prefix).await;
    let k = Keys::new(&prefix);
    bus_suite(|| {
        Arc::new(RedisBus::cluster(
            &cluster.nodes(),
            k.bus_channel(),
            k.instances(),
            Duration::from_secs(2),
        )) as Arc<dyn Bus>
    })
    .await;
}

#[tokio::test]
async fn postgres() {
    let db = TestDb::migrated().await;
    let prefix = redis_prefix();
    store_suite(&PostgresStore::new(db.pool.clone()), &prefix).await;
    let pool = db.pool.clone();
    bus_suite(|| Arc::new(PostgresBus::new(pool.clone(), &prefix)) as Arc<dyn Bus>).await;
}
