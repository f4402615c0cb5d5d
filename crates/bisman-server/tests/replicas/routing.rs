//! Routing: which reads go to the standbys, and read-your-writes across
//! instances (by the session's write position in the shared store, and by
//! the `Bisman-Lsn` header a client carries itself).

use axum::http::{Method, StatusCode};
use bisman_db::replicas::PrimaryReason;
use serde_json::{json, Value};

use crate::common::*;
use crate::World;

/// Every read-heavy route reads a standby when the caller has written
/// nothing; both standbys take turns; the primary serves none of them.
pub async fn read_heavy_routes_read_the_standbys(w: &World) {
    let a = &w.a;
    let staff = a.login("staff@demo.test").await;
    let admin = a.login("admin@demo.test").await;
    let manager = a.login("manager@demo.test").await;
    let owner = a.login("owner@demo.test").await;
    let (t, m) = (&w.thread, &w.message);
    let calls: Vec<(&str, String)> = vec![
        (&staff, "/api/v1/threads".into()),
        (&staff, "/api/v1/threads/unread".into()),
        (&staff, format!("/api/v1/threads/{t}/messages?limit=20")),
        (&staff, format!("/api/v1/messages/{m}/reads")),
        (&staff, format!("/api/v1/messages/{m}/reactions")),
        (&admin, "/api/v1/usage-events/summary".into()),
        (&manager, "/api/v1/approvals/pending".into()),
        (&owner, "/api/v1/ops/partitions".into()),
        (&owner, "/api/v1/ops/jobs".into()),
    ];
    let before = a.report();
    for (token, path) in &calls {
        let r = a.get(path, token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    // Routes that must read the primary do not touch the routing counters.
    for path in [
        "/api/v1/permissions/check?module=messaging&page=threads&action=view",
        "/api/v1/auth/sessions",
    ] {
        let r = a.get(path, &staff).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
    }
    let after = a.report();
    assert_eq!(
        all_replica_reads(&after) - all_replica_reads(&before),
        calls.len() as u64,
        "every read-heavy call read a standby: {after:#?}"
    );
    assert_eq!(after.primary_read_total(), before.primary_read_total());
    for i in 0..2 {
        assert!(
            replica_reads(&after, i) > replica_reads(&before, i),
            "standby {i} took its turn: {after:#?}"
        );
    }
}

/// With replay paused on both standbys: a writer reads its write on the
/// other instance (the primary answers), while a reader who wrote nothing
/// gets the standbys' older page; a client carrying the write's position
/// in `Bisman-Lsn` gets the new one; permission changes are never read
/// from a standby. Once the standbys replay past the write, the writer's
/// reads return to them.
pub async fn writers_read_their_writes_on_any_instance(w: &World) {
    let (a, b, t) = (&w.a, &w.b, &w.thread);
    let writer = a.login("staff@demo.test").await;
    let reader = b.login("manager@demo.test").await;
    w.pg.pause_replay(0).await;
    w.pg.pause_replay(1).await;

    let (id, lsn) = a.post(&writer, t, "read your writes").await;
    let lsn = lsn.expect("a write's reply carries Bisman-Lsn");

    let before = b.report();
    assert!(
        b.page_ids(&writer, t, &[]).await.contains(&id),
        "the writer sees its post on the other instance"
    );
    let mid = b.report();
    assert_eq!(
        primary_reads(&mid, PrimaryReason::NotCaughtUp),
        primary_reads(&before, PrimaryReason::NotCaughtUp) + 1,
        "{mid:#?}"
    );
    assert!(
        !b.page_ids(&reader, t, &[]).await.contains(&id),
        "a reader who wrote nothing reads a standby, which has not replayed the post"
    );
    assert_eq!(all_replica_reads(&b.report()), all_replica_reads(&mid) + 1);
    // A client that carries the position itself.
    assert!(b
        .page_ids(&reader, t, &[("bisman-lsn", lsn.as_str())])
        .await
        .contains(&id));
    for bad in ["", "yesterday", "1/2/3", "0/xyz"] {
        let r = b
            .call(
                Method::GET,
                &format!("/api/v1/threads/{t}/messages"),
                Some(&reader),
                None,
                &[("bisman-lsn", bad)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "invalid_lsn");
    }
    // The post is not on the standbys: the reader cannot see its reactions
    // yet, the writer can (from the primary).
    let path = format!("/api/v1/messages/{id}/reactions");
    assert_eq!(b.get(&path, &reader).await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get(&path, &writer).await.status, StatusCode::OK);

    revocation_reads_the_primary(w).await;

    w.pg.resume_replay(0).await;
    w.pg.resume_replay(1).await;
    let lsn: bisman_db::replicas::Lsn = lsn.parse().unwrap();
    b.wait_report("caught up with the post", |r| {
        r.replicas
            .iter()
            .all(|s| s.usable && s.replay_lsn.is_some_and(|l| l >= lsn))
    })
    .await;
    let before = b.report();
    assert!(b.page_ids(&writer, t, &[]).await.contains(&id));
    assert!(b.page_ids(&reader, t, &[]).await.contains(&id));
    let after = b.report();
    assert_eq!(all_replica_reads(&after), all_replica_reads(&before) + 2);
    assert_eq!(after.primary_read_total(), before.primary_read_total());
}

/// With the standbys frozen, a role edit is seen at once everywhere: the
/// permission path reads the primary (through the caches), never a standby.
async fn revocation_reads_the_primary(w: &World) {
    let (a, b) = (&w.a, &w.b);
    let owner = a.login("owner@demo.test").await;
    let staff = b.login("staff@demo.test").await;
    let roles = a.get("/api/v1/admin/roles", &owner).await;
    assert_eq!(roles.status, StatusCode::OK, "{}", roles.text);
    let role = roles
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Staff")
        .unwrap()
        .clone();
    let granted: Vec<Value> = role["permissions"].as_array().unwrap().clone();
    let revoked: Vec<Value> = granted
        .iter()
        .filter(|p| p["module"] != "messaging")
        .cloned()
        .collect();
    let path = format!("/api/v1/admin/roles/{}/permissions", role["id"]);
    let put = |perms: Vec<Value>| {
        let owner = owner.clone();
        let path = path.clone();
        async move {
            let r = a
                .call(
                    Method::PUT,
                    &path,
                    Some(&owner),
                    Some(json!({ "permissions": perms })),
                    &[],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
    };
    assert_eq!(
        b.get("/api/v1/threads", &staff).await.status,
        StatusCode::OK
    );
    put(revoked).await;
    assert_eq!(
        b.get("/api/v1/threads", &staff).await.status,
        StatusCode::FORBIDDEN,
        "the revocation holds on the other instance while the standbys are frozen"
    );
    put(granted).await;
    assert_eq!(
        b.get("/api/v1/threads", &staff).await.status,
        StatusCode::OK
    );
}

/// The figures: per replica in `/metrics`, `/readyz` details, the ops page.
pub async fn figures_in_metrics_readyz_and_ops_page(w: &World) {
    let a = &w.a;
    let metrics = a.call(Method::GET, "/metrics", None, None, &[]).await.text;
    for i in 0..2 {
        let name = a.report().replicas[i].name.clone();
        assert!(
            name.starts_with("127.0.0.1:") && name.ends_with("/bisman"),
            "{name}"
        );
        for series in [
            format!("bisman_replica_usable{{replica=\"{name}\"}} 1"),
            format!("bisman_replica_state{{replica=\"{name}\",state=\"healthy\"}} 1"),
            format!("bisman_replica_lag_seconds{{replica=\"{name}\"}} "),
            format!("bisman_replica_lag_bytes{{replica=\"{name}\"}} "),
            format!("bisman_db_reads_total{{target=\"replica\",replica=\"{name}\"}} "),
        ] {
            assert!(metrics.contains(&series), "{series} in\n{metrics}");
        }
    }
    assert!(metrics.contains("bisman_db_reads_total{target=\"primary\",reason=\"not_caught_up\"}"));

    let ready = a.call(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    let replicas = &ready.body["replicas"];
    assert_eq!(replicas["configured"], 2, "{replicas}");
    assert_eq!(replicas["usable"], 2, "{replicas}");
    let report: bisman_db::replicas::ReplicaReport =
        serde_json::from_value(replicas.clone()).expect("the /readyz details are the typed report");
    assert!(report
        .replicas
        .iter()
        .all(|r| r.reads > 0 && r.lag_ms.is_some()));

    let owner = a.login("owner@demo.test").await;
    let page = a
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
    for r in &report.replicas {
        assert!(
            page.text.contains(&format!("data-replica=\"{}\"", r.name)),
            "{}",
            page.text
        );
    }
    assert!(
        page.text.contains("healthy") && page.text.contains("Reads the primary served instead")
    );
    // Staff members do not see it.
    let staff = a.login("staff@demo.test").await;
    let denied = a
        .call(
            Method::GET,
            "/ops/replicas",
            None,
            None,
            &[
                ("host", "ops.test"),
                ("cookie", &format!("bisman_ops_session={staff}")),
            ],
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
}

/// A writer's next read need not wait for the next check: when the checks
/// saw no standby past its write, the one furthest along is asked where it
/// is now, and serves the read once it has replayed the write. (Checks are
/// an hour apart here, so only the on-demand question can know.)
pub async fn standbys_are_asked_when_a_writer_is_ahead(w: &World) {
    let mut c = config(
        &w.prefix,
        &w.pg.standby_urls(),
        std::time::Duration::from_secs(600),
    );
    c.replicas.replica_check_every = std::time::Duration::from_secs(3600);
    let slow = Instance::start(&c, w.primary.clone()).await;
    slow.wait_report("checked once", all_usable).await;
    let writer = slow.login("staff@demo.test").await;
    let (id, _) = slow
        .post(&writer, &w.thread, "ahead of the last check")
        .await;
    w.pg.wait_replayed(0).await;
    w.pg.wait_replayed(1).await;
    let before = slow.report();
    assert!(slow.page_ids(&writer, &w.thread, &[]).await.contains(&id));
    let after = slow.report();
    assert_eq!(
        all_replica_reads(&after),
        all_replica_reads(&before) + 1,
        "{after:#?}"
    );
    assert_eq!(after.primary_read_total(), before.primary_read_total());
    let probes: u64 = after.replicas.iter().map(|r| r.replay_probes).sum();
    assert_eq!(probes, 1, "{after:#?}");
}

/// A request with a made-up token (401) leaves nothing in the shared store
/// (a flood of them cannot fill it); a real write of the same kind does.
pub async fn made_up_sessions_leave_no_position(w: &World) {
    let store = bisman_cache::store::RedisStore::connect(
        &bisman_testkit::redis_url(),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let memory = bisman_server::routing::WriteMemory::with_store(
        Some(std::sync::Arc::new(store)),
        &w.prefix,
        std::time::Duration::from_secs(60),
    );
    let made_up = bisman_cache::SessionToken::generate();
    let r =
        w.a.call(
            Method::POST,
            &format!("/api/v1/threads/{}/messages", w.thread),
            Some(made_up.expose()),
            Some(json!({"content": "nobody"})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get("bisman-lsn").is_none());
    assert_eq!(memory.recall(&made_up.hash()).await.unwrap(), None);

    let real = w.a.login("staff@demo.test").await;
    let (_, lsn) = w.a.post(&real, &w.thread, "somebody").await;
    let real = bisman_cache::SessionToken::parse(&real).unwrap();
    assert_eq!(
        memory
            .recall(&real.hash())
            .await
            .unwrap()
            .map(|l| l.to_string()),
        lsn,
        "the shared store holds the position the reply carried"
    );
}
