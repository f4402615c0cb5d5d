//! PostgreSQL failing under load: a real restart of a private server, and
//! connections cut or black-holed by a TCP proxy. While it is away,
//! requests that need it get 503 (never 500, never a grant from nothing);
//! the service recovers by itself; afterwards nothing fails; no
//! acknowledged write is missing.

use std::path::PathBuf;

use bisman_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use bisman_db::Migrator;
use bisman_load::{verify_writes, Load};
use bisman_testkit::{TcpProxy, TestDb};

use crate::harness::*;

/// The longest a fault lasts.
const FAULT: std::time::Duration = std::time::Duration::from_secs(15);

/// Kills the private server if the test ends early.
struct Private {
    server: Option<EmbeddedPostgres>,
    pgdata: PathBuf,
}

impl Drop for Private {
    fn drop(&mut self) {
        if self.server.is_none() {
            return;
        }
        let pid = std::fs::read_to_string(self.pgdata.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()));
        if let Some(pid) = pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGQUIT,
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load() {
    let _one = ONE_AT_A_TIME.lock().await;
    let logs = log_dir("postgres");
    let server = EmbeddedPostgres::start(&EmbeddedOptions {
        data_dir: logs.join("data"),
        port: None,
    })
    .await
    .expect("start a private PostgreSQL");
    let mut private = Private {
        pgdata: server.pgdata().to_path_buf(),
        server: Some(server),
    };
    let server = private.server.as_ref().unwrap();
    server.ensure_database("bisman").await.unwrap();
    let url = server.url("bisman");
    let pool = bisman_db::connect(&url, 4).await.unwrap();
    Migrator::embedded()
        .run(&pool, None, &|_| {})
        .await
        .unwrap();
    bisman_server::demo::seed(&pool).await.unwrap();
    pool.close().await;

    let cluster = Cluster::start(
        2,
        &[
            ("DATABASE_URL", url.clone()),
            ("REDIS_URL", bisman_testkit::redis_url()),
            ("BISMAN_CACHE_PREFIX", bisman_testkit::redis_prefix()),
        ],
        &logs,
    );
    let load = Load::start(load_config(cluster.targets())).await.unwrap();
    let n = per_phase();
    let_through(&load, n).await;

    load.phase("postgres down", false);
    server.stop_keeping().await.expect("stop PostgreSQL");
    let_fault_last(&load, n, FAULT).await;

    load.phase("recovering", false);
    server.start_again().await.expect("start PostgreSQL again");
    cluster.wait_ready("back on PostgreSQL", postgres_ok).await;
    load.phase("postgres back", true);
    let_through(&load, n).await;

    let acked = load.acknowledged();
    let mut report = load.stop().await;
    let pool = bisman_db::connect(&url, 2).await.unwrap();
    report.writes_check(verify_writes(&pool, "demo", &acked).await.unwrap());
    pool.close().await;
    check_common("postgres restarted", &report);
    assert_eq!(report.writes.lost(), 0, "acknowledged writes lost");
    let down = phase(&report, "postgres down");
    assert!(
        down.counts.unavailable > 0,
        "requests needing PostgreSQL got 503"
    );
    assert_eq!(down.counts.transport, 0, "the instances kept answering");
    drop(cluster);
    let server = private.server.take().unwrap();
    server.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(logs.join("data"));
}

/// `url` with its `host:port` replaced by `addr`.
fn via(url: &str, addr: &str) -> String {
    let at = url.find('@').map_or("postgres://".len(), |i| i + 1);
    let end = url[at..].find('/').map_or(url.len(), |i| at + i);
    format!("{}{addr}{}", &url[..at], &url[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_cut_and_stalled_under_load() {
    let _one = ONE_AT_A_TIME.lock().await;
    let db = TestDb::migrated().await;
    bisman_server::demo::seed(&db.pool).await.unwrap();
    let upstream = {
        let at = db.url.find('@').unwrap() + 1;
        let end = at + db.url[at..].find('/').unwrap();
        db.url[at..end].to_string()
    };
    let proxy = TcpProxy::start(&upstream).await;
    let cluster = Cluster::start(
        2,
        &[
            ("DATABASE_URL", via(&db.url, &proxy.addr())),
            ("REDIS_URL", bisman_testkit::redis_url()),
            ("BISMAN_CACHE_PREFIX", bisman_testkit::redis_prefix()),
            // A request stuck on a black-holed connection ends as a 503.
            ("BISMAN_REQUEST_TIMEOUT", "5s".into()),
        ],
        &log_dir("postgres-proxy"),
    );
    let load = Load::start(load_config(cluster.targets())).await.unwrap();
    let n = per_phase();
    let_through(&load, n).await;

    load.phase("postgres cut", false);
    proxy.cut();
    let_fault_last(&load, n, FAULT).await;
    proxy.resume();
    load.phase("recovering from cut", false);
    cluster.wait_ready("back on PostgreSQL", postgres_ok).await;
    load.phase("after cut", true);
    let_through(&load, n).await;

    load.phase("postgres stalled", false);
    proxy.stall();
    let_fault_last(&load, n, FAULT).await;
    proxy.resume();
    load.phase("recovering from stall", false);
    cluster.wait_ready("back on PostgreSQL", postgres_ok).await;
    load.phase("after stall", true);
    let_through(&load, n).await;

    let acked = load.acknowledged();
    let mut report = load.stop().await;
    report.writes_check(verify_writes(&db.pool, "demo", &acked).await.unwrap());
    check_common("postgres connections cut and stalled", &report);
    assert_eq!(report.writes.lost(), 0, "acknowledged writes lost");
    assert!(phase(&report, "postgres cut").counts.unavailable > 0);
    for p in &report.phases {
        assert_eq!(
            p.counts.transport, 0,
            "{}: the instances kept answering",
            p.name
        );
    }
}
