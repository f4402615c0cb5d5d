//! Redis stopped and restarted, then black-holed, under load: no request
//! fails (PostgreSQL answers), no revoked permission is granted at any point
//! (revocations go on throughout), and once Redis is back every instance
//! uses it again with its near-cache resubscribed.

use bisman_load::{verify_writes, Load};
use bisman_testkit::{RedisServer, TcpProxy, TestDb};
use redis::AsyncCommands;

use crate::harness::*;

/// The longest a fault lasts.
const FAULT: std::time::Duration = std::time::Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_restarted_and_stalled_under_load() {
    let _one = ONE_AT_A_TIME.lock().await;
    let db = TestDb::migrated().await;
    bisman_server::demo::seed(&db.pool).await.unwrap();
    let mut redis = RedisServer::start();
    let proxy = TcpProxy::start(&format!("127.0.0.1:{}", redis.port())).await;
    let prefix = bisman_testkit::redis_prefix();
    let cluster = Cluster::start(
        2,
        &[
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", format!("redis://{}", proxy.addr())),
            ("BISMAN_CACHE_PREFIX", prefix.clone()),
        ],
        &log_dir("redis"),
    );
    cluster.wait_ready("using Redis", cache_back).await;
    let load = Load::start(load_config(cluster.targets())).await.unwrap();
    let n = per_phase();
    let_through(&load, n).await;

    // Stopped: every request is still answered (strict phase).
    load.phase("redis stopped", true);
    redis.stop();
    let judged = load.judged_checks();
    let_fault_last(&load, n, FAULT).await;
    let judged_in_outage = load.judged_checks() - judged;

    // Restarted empty: the instances find it again and resubscribe.
    redis.restart();
    load.phase("redis back", true);
    cluster.wait_ready("back on Redis", cache_back).await;
    let_through(&load, n).await;

    // Black-holed: connections stay open, nothing comes back.
    load.phase("redis stalled", true);
    proxy.stall();
    let_fault_last(&load, n, FAULT).await;
    proxy.resume();
    load.phase("redis resumed", true);
    cluster.wait_ready("back on Redis", cache_back).await;
    let_through(&load, n).await;

    let acked = load.acknowledged();
    let mut report = load.stop().await;
    report.writes_check(verify_writes(&db.pool, "demo", &acked).await.unwrap());
    check_common("redis", &report);
    assert_eq!(report.writes.lost(), 0);
    assert!(
        judged_in_outage > 0,
        "revocations were judged while Redis was down"
    );
    assert!(phase(&report, "redis stopped").counts.ok > 0);
    // The restarted (empty) Redis holds the instances' entries again.
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    assert!(!keys.is_empty(), "the instances use Redis again");
}
