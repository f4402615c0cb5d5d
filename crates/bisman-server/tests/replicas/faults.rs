//! Faults: a write cancelled after its commit, lag injected with
//! `pg_wal_replay_pause()`, a standby stopped and another promoted while
//! requests run, the shared store of write positions gone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::Router;
use bisman_db::replicas::{Lsn, PrimaryReason, ReplicaState};
use serde_json::json;
use tower::ServiceExt;

use crate::common::*;
use crate::World;

/// A write whose request is dropped after its commit (the client went
/// away) still moves the session's write position: the session's next
/// reads, on another instance, see the write although both standbys are
/// frozen before it.
pub async fn cancelled_write_still_moves_the_floor(w: &World) {
    let (a, b, t) = (&w.a, &w.b, &w.thread);
    let writer = a.login("staff@demo.test").await;
    w.pg.pause_replay(0).await;
    w.pg.pause_replay(1).await;

    // The service's own write layer around a handler that commits a
    // message, says so, and then never returns: the request is dropped
    // between the commit and the reply, deterministically.
    let (committed_tx, committed_rx) = tokio::sync::oneshot::channel::<()>();
    let committed_tx = Arc::new(Mutex::new(Some(committed_tx)));
    let primary = w.primary.clone();
    let thread = t.clone();
    let id = format!("msg_cancelled_{}", uuid::Uuid::new_v4().simple());
    let row_id = id.clone();
    let handler = move || {
        let (primary, thread, row_id, tx) = (
            primary.clone(),
            thread.clone(),
            row_id.clone(),
            committed_tx.clone(),
        );
        async move {
            sqlx::query(
                r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content)
                   SELECT $1, u.tenant_id, $2, u.id, 'cancelled after commit'
                   FROM users u WHERE u.email = 'staff@demo.test'"#,
            )
            .bind(&row_id)
            .bind(&thread)
            .execute(&primary)
            .await
            .unwrap();
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(());
            }
            std::future::pending::<()>().await;
        }
    };
    let app = Router::new()
        .route("/write", axum::routing::post(handler))
        .layer(axum::middleware::from_fn_with_state(
            a.service.state().db.clone(),
            bisman_server::routing::writes::remember_writes,
        ));
    let request = axum::http::Request::post("/write")
        .header("authorization", format!("Bearer {writer}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let in_flight = tokio::spawn(app.oneshot(request));
    committed_rx.await.expect("the handler committed");
    in_flight.abort();
    assert!(in_flight.await.unwrap_err().is_cancelled());

    // The position is remembered in the background: the writer's reads
    // reach the message (the primary) within the patience, never a
    // standby's page without it.
    let deadline = Instant::now() + PATIENCE;
    while !b.page_ids(&writer, t, &[]).await.contains(&id) {
        assert!(
            Instant::now() < deadline,
            "the cancelled write's position was never remembered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    w.pg.resume_replay(0).await;
    w.pg.resume_replay(1).await;
    a.wait_report("serving again", all_usable).await;
    b.wait_report("serving again", all_usable).await;
}

/// With the real lag limit (1 s): a standby with replay paused while the
/// primary writes is skipped once it is a second behind, for everyone;
/// with both behind, the primary serves; resumed, they serve again.
pub async fn lag_beyond_the_limit_is_skipped(w: &World) {
    let c = Instance::start(
        &config(&w.prefix, &w.pg.standby_urls(), Duration::from_secs(1)),
        w.primary.clone(),
    )
    .await;
    c.wait_report("serving from both standbys", all_usable)
        .await;
    let writer = c.login("staff@demo.test").await;
    let reader = c.login("manager@demo.test").await;
    let t = &w.thread;

    w.pg.pause_replay(0).await;
    let (first, lsn) = c.post(&writer, t, "while standby 0 is paused").await;
    let lsn: Lsn = lsn.unwrap().parse().unwrap();
    c.wait_report("standby 0 lagging, standby 1 past the post", |r| {
        r.replicas[0].state == ReplicaState::Lagging
            && r.replicas[0].lag_ms.is_some_and(|ms| ms > 1000)
            && r.replicas[1].usable
            && r.replicas[1].replay_lsn.is_some_and(|l| l >= lsn)
    })
    .await;
    assert_eq!(c.report().replicas[0].replay_paused, Some(true));
    let before = c.report();
    for _ in 0..6 {
        assert!(c.page_ids(&reader, t, &[]).await.contains(&first));
    }
    let after = c.report();
    assert_eq!(
        replica_reads(&after, 0),
        replica_reads(&before, 0),
        "{after:#?}"
    );
    // Standby 1 serves them, unless a check of it came late on a busy
    // machine: then the primary does. Never standby 0.
    assert_eq!(
        replica_reads(&after, 1) - replica_reads(&before, 1) + after.primary_read_total()
            - before.primary_read_total(),
        6,
        "{after:#?}"
    );
    assert!(
        replica_reads(&after, 1) > replica_reads(&before, 1),
        "{after:#?}"
    );

    w.pg.pause_replay(1).await;
    let (second, _) = c.post(&writer, t, "while both are paused").await;
    c.wait_report("both standbys lagging", |r| {
        r.usable == 0 && r.replicas.iter().all(|s| s.state == ReplicaState::Lagging)
    })
    .await;
    let before = c.report();
    assert!(c.page_ids(&reader, t, &[]).await.contains(&second));
    let after = c.report();
    assert_eq!(
        primary_reads(&after, PrimaryReason::NoneHealthy),
        primary_reads(&before, PrimaryReason::NoneHealthy) + 1
    );
    assert_eq!(all_replica_reads(&after), all_replica_reads(&before));

    w.pg.resume_replay(0).await;
    w.pg.resume_replay(1).await;
    c.wait_report("serving again after catching up", all_usable)
        .await;
    let before = c.report();
    assert!(c.page_ids(&reader, t, &[]).await.contains(&second));
    assert_eq!(
        all_replica_reads(&c.report()),
        all_replica_reads(&before) + 1
    );
}

/// Requests on both instances, by several sessions (reading, and one in
/// five posting), until told to stop; every reply must be the expected one.
struct Load {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    wrong: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(w: &World) -> Load {
        let routers = [w.a.router.clone(), w.b.router.clone()];
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let wrong = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (k, email) in ["staff", "manager", "admin", "owner"].iter().enumerate() {
            let token = w.a.login(&format!("{email}@demo.test")).await;
            let (routers, stop, done, wrong) =
                (routers.clone(), stop.clone(), done.clone(), wrong.clone());
            let (thread, message) = (w.thread.clone(), w.message.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = k;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let router = &routers[n % 2];
                    let (method, path, body, expect) = match n % 5 {
                        0 => (
                            Method::POST,
                            format!("/api/v1/threads/{thread}/messages"),
                            Some(json!({ "content": format!("load {n}") })),
                            StatusCode::CREATED,
                        ),
                        1 => (
                            Method::GET,
                            "/api/v1/threads/unread".into(),
                            None,
                            StatusCode::OK,
                        ),
                        2 => (
                            Method::GET,
                            format!("/api/v1/messages/{message}/reactions"),
                            None,
                            StatusCode::OK,
                        ),
                        3 => (
                            Method::GET,
                            format!("/api/v1/messages/{message}/reads"),
                            None,
                            StatusCode::OK,
                        ),
                        _ => (
                            Method::GET,
                            format!("/api/v1/threads/{thread}/messages?limit=50"),
                            None,
                            StatusCode::OK,
                        ),
                    };
                    let r = call(router, method.clone(), &path, Some(&token), body, &[]).await;
                    if r.status != expect {
                        wrong
                            .lock()
                            .unwrap()
                            .push(format!("{method} {path}: {} {}", r.status, r.text));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        Load {
            stop,
            done,
            wrong,
            tasks,
        }
    }

    /// Waits until `n` more requests finished.
    async fn let_through(&self, n: u64) {
        let target = self.done.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + PATIENCE;
        while self.done.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops, and says how many requests were made; panics on any wrong reply.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        let wrong = self.wrong.lock().unwrap();
        assert!(
            wrong.is_empty(),
            "{} wrong replies: {:#?}",
            wrong.len(),
            &wrong[..wrong.len().min(10)]
        );
        self.done.load(Ordering::Relaxed)
    }
}

/// A standby stopped (`pg_ctl stop -m fast`) while both instances serve:
/// no request fails (reads it was serving are made again elsewhere), it is
/// marked down, the other standby and the primary carry on; started again,
/// it serves again.
pub async fn standby_stopped_under_load(w: &World) {
    let load = Load::start(w).await;
    load.let_through(200).await;
    w.pg.stop_standby(0).await;
    load.let_through(300).await;
    w.a.wait_report("standby 0 down", state_is(0, ReplicaState::Down))
        .await;
    let mid = w.a.report();
    load.let_through(100).await;
    let made = load.stop().await;
    let after = w.a.report();
    eprintln!("standby stopped under load: {made} requests, no wrong reply; {after:#?}");
    assert_eq!(
        replica_reads(&after, 0),
        replica_reads(&mid, 0),
        "a down standby gets no reads"
    );
    assert!(replica_reads(&after, 1) > replica_reads(&mid, 1));
    assert!(after.replicas[0].last_error.is_some());

    w.pg.restart_standby(0).await;
    w.a.wait_report("standby 0 back", all_usable).await;
    w.b.wait_report("standby 0 back", all_usable).await;
}

/// The shared store of write positions unreachable: nobody's last write can
/// be known, so reads go to the primary (never a possibly stale standby),
/// and nothing fails.
pub async fn write_positions_unreadable_mean_primary(w: &World) {
    let mut redis = bisman_testkit::RedisServer::start();
    let mut c = config(
        &bisman_testkit::redis_prefix(),
        &w.pg.standby_urls(),
        Duration::from_secs(600),
    );
    c.cache.redis_url = Some(redis.url());
    let d = Instance::start(&c, w.primary.clone()).await;
    d.wait_report("serving from both standbys", all_usable)
        .await;
    let writer = d.login("staff@demo.test").await;
    let reader = d.login("manager@demo.test").await;
    // Sessions in the near-cache, so that they answer without Redis.
    d.page_ids(&reader, &w.thread, &[]).await;
    d.page_ids(&writer, &w.thread, &[]).await;
    w.pg.pause_replay(0).await;
    w.pg.pause_replay(1).await;
    redis.stop();

    let (id, _) = d.post(&writer, &w.thread, "while the store is down").await;
    let before = d.report();
    assert!(d.page_ids(&reader, &w.thread, &[]).await.contains(&id));
    assert!(d.page_ids(&writer, &w.thread, &[]).await.contains(&id));
    let after = d.report();
    assert_eq!(
        primary_reads(&after, PrimaryReason::FloorUnknown),
        primary_reads(&before, PrimaryReason::FloorUnknown) + 2,
        "{after:#?}"
    );
    assert_eq!(all_replica_reads(&after), all_replica_reads(&before));

    redis.restart();
    w.pg.resume_replay(0).await;
    w.pg.resume_replay(1).await;
    w.a.wait_report("serving again", all_usable).await;
}

/// Standby 1 promoted while both instances serve: no request fails; it is
/// skipped from then on (it no longer follows the primary), and readers see
/// later writes (from standby 0 or the primary), never its frozen copy.
pub async fn promotion_under_load(w: &mut World) {
    let load = Load::start(w).await;
    load.let_through(200).await;
    w.pg.promote(1).await;
    load.let_through(300).await;
    for i in [&w.a, &w.b] {
        i.wait_report(
            "standby 1 seen promoted",
            state_is(1, ReplicaState::Promoted),
        )
        .await;
    }
    load.let_through(100).await;
    let made = load.stop().await;
    eprintln!("promotion under load: {made} requests, no wrong reply");

    let writer = w.a.login("staff@demo.test").await;
    let reader = w.b.login("manager@demo.test").await;
    let (id, _) = w.a.post(&writer, &w.thread, "after the promotion").await;
    w.pg.wait_replayed(0).await;
    let before = w.b.report();
    for _ in 0..4 {
        assert!(w.b.page_ids(&reader, &w.thread, &[]).await.contains(&id));
    }
    let after = w.b.report();
    assert_eq!(
        replica_reads(&after, 1),
        replica_reads(&before, 1),
        "{after:#?}"
    );
    assert!(!after.replicas[1].usable);
}

/// A standby that fails reads before any check notices (checks an hour
/// apart here): each failed read is made again on the primary, the standby
/// is skipped from the first failure on, and no request fails.
pub async fn reads_failing_on_a_standby_move_to_the_primary(w: &World) {
    let mut c = config(&w.prefix, &w.pg.standby_urls(), Duration::from_secs(600));
    c.replicas.replica_check_every = Duration::from_secs(3600);
    let slow = Instance::start(&c, w.primary.clone()).await;
    slow.wait_report("checked once", all_usable).await;
    let reader = slow.login("manager@demo.test").await;
    // Every read so far served; now standby 0 goes away unnoticed.
    w.pg.stop_standby(0).await;
    let before = slow.report();
    for _ in 0..6 {
        let r = slow
            .get(&format!("/api/v1/threads/{}/messages", w.thread), &reader)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let after = slow.report();
    let s0 = &after.replicas[0];
    assert_eq!(s0.state, ReplicaState::Healthy, "no check has run since");
    assert!(!s0.usable, "skipped after its failure: {after:#?}");
    assert_eq!(s0.fallbacks - before.replicas[0].fallbacks, 1, "{after:#?}");
    assert_eq!(s0.reads - before.replicas[0].reads, 1, "one read tried it");
    assert_eq!(
        primary_reads(&after, PrimaryReason::Fallback),
        primary_reads(&before, PrimaryReason::Fallback) + 1
    );
    assert_eq!(replica_reads(&after, 1), replica_reads(&before, 1) + 5);
    w.pg.restart_standby(0).await;
    w.a.wait_report("standby 0 back", all_usable).await;
    w.b.wait_report("standby 0 back", all_usable).await;
}
