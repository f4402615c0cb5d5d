//! Read replicas under load: `bisman serve` processes reading from two real
//! hot standbys of a private primary (the test kit's `ReplicatedPostgres`),
//! the read-heavy mix with every post read back by its poster on the next
//! instance, while one standby is stopped, the other promoted, and the
//! first started again. Every phase is strict: a standby going away must
//! cost no request (no 503 either), no read-your-writes miss, no revoked
//! grant, no acknowledged write.

use std::time::Duration;

use bisman_load::{verify_writes, Load, ReplicaWatch};
use bisman_testkit::ReplicatedPostgres;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standbys_stopped_and_promoted_under_load() {
    let _one = ONE_AT_A_TIME.lock().await;
    let pg = ReplicatedPostgres::start(2).await;
    let pool = pg.primary_pool(2).await;
    bisman_server::demo::seed(&pool).await.unwrap();
    pg.wait_replayed(0).await;
    pg.wait_replayed(1).await;
    let cluster = Cluster::start(
        2,
        &[
            ("DATABASE_URL", pg.primary_url()),
            ("DATABASE_REPLICA_URLS", pg.standby_urls().join(",")),
            ("BISMAN_REPLICA_POOL_SIZE", "4".into()),
            ("REDIS_URL", bisman_testkit::redis_url()),
            ("BISMAN_CACHE_PREFIX", bisman_testkit::redis_prefix()),
        ],
        &log_dir("replicas"),
    );
    let usable = |n: u64| move |b: &serde_json::Value| b["replicas"]["usable"] == n;
    cluster
        .wait_ready("reading from both standbys", &usable(2))
        .await;

    let mut config = load_config(cluster.targets());
    config.mix = "read-heavy".parse().unwrap();
    config.check_read_your_writes = true;
    let watch = ReplicaWatch::start(
        cluster.instances.iter().map(|p| p.base_url()).collect(),
        Duration::from_secs(1),
    );
    let load = Load::start(config).await.unwrap();
    let n = per_phase();
    let_through(&load, n).await;

    load.phase("standby 0 stopped", true);
    pg.stop_standby(0).await;
    let_through(&load, n).await;

    load.phase("standby 1 promoted", true);
    pg.promote(1).await;
    cluster
        .wait_ready("reading from no standby", &usable(0))
        .await;
    let_through(&load, n).await;

    load.phase("standby 0 back", true);
    pg.restart_standby(0).await;
    cluster
        .wait_ready("reading from standby 0 again", &usable(1))
        .await;
    let_through(&load, n).await;

    let acked = load.acknowledged();
    let mut report = load.stop().await;
    let replicas = watch.finish().await;
    report.writes_check(verify_writes(&pool, "demo", &acked).await.unwrap());
    pool.close().await;
    check_common("standbys stopped and promoted under load", &report);
    eprintln!("{}", replicas.to_markdown());
    assert_eq!(report.writes.lost(), 0, "acknowledged writes lost");
    let ryw = report
        .read_your_writes
        .clone()
        .expect("posts were read back");
    assert!(ryw.checked > 0, "{ryw:?}");
    assert_eq!(ryw.missed, 0, "a poster did not read its post back");
    assert!(
        replicas.replica_reads() > 0,
        "the standbys served reads: {replicas:?}"
    );
    for p in &report.phases {
        assert_eq!(p.counts.unavailable, 0, "{}: a 503", p.name);
    }
}
