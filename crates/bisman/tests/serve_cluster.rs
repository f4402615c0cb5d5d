//! Three `bisman serve` processes on loopback ports sharing one PostgreSQL
//! and one Redis: a revocation through one is seen by the next request to
//! each other instance, and a logout through one ends the session on all.
//! Then each process shuts down gracefully on SIGTERM.

use bisman_testkit::{ServeProcess, TestDb};
use serde_json::{json, Value};

fn start(db: &TestDb, redis_prefix: &str) -> ServeProcess {
    let redis = bisman_testkit::redis_url();
    ServeProcess::start(
        env!("CARGO_BIN_EXE_bisman"),
        &[
            ("DATABASE_URL", &db.url),
            ("REDIS_URL", &redis),
            ("BISMAN_CACHE_PREFIX", redis_prefix),
        ],
    )
}

fn login(inst: &ServeProcess, email: &str) -> String {
    inst.login(email, bisman_server::demo::DEMO_PASSWORD)
}

fn may_submit(inst: &ServeProcess, token: &str) -> (u16, Value) {
    inst.call(
        "GET",
        "/api/v1/permissions/check?module=expenses&page=submit&action=create",
        Some(token),
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_revocations_and_logouts() {
    let db = TestDb::migrated().await;
    bisman_server::demo::seed(&db.pool).await.unwrap();
    let role: i32 = sqlx::query_scalar("SELECT id FROM roles WHERE name = 'Staff'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let prefix = bisman_testkit::redis_prefix();
    let instances: Vec<ServeProcess> = (0..3).map(|_| start(&db, &prefix)).collect();

    let staff = login(&instances[0], "staff@demo.test");
    // Every instance answers (and caches, near and shared) the grant.
    for (i, inst) in instances.iter().enumerate() {
        for _ in 0..2 {
            let (status, body) = may_submit(inst, &staff);
            assert_eq!(
                (status, &body["allowed"]),
                (200, &json!(true)),
                "instance {i}: {body}"
            );
        }
    }

    // The admin revokes `expenses/submit` through instance 1.
    let admin = login(&instances[1], "admin@demo.test");
    let (status, body) = instances[1].call(
        "PUT",
        &format!("/api/v1/admin/roles/{role}/permissions"),
        Some(&admin),
        Some(json!({"permissions": [
            {"module": "expenses", "page": "list", "actions": ["view"]},
            {"module": "messaging", "page": "threads", "actions": ["view", "create"]}]})),
    );
    assert_eq!(status, 200, "{body}");
    // The very next request to each other instance is denied.
    for i in [0, 2] {
        let (status, body) = may_submit(&instances[i], &staff);
        assert_eq!(
            (status, &body["allowed"]),
            (200, &json!(false)),
            "instance {i}: {body}"
        );
    }

    // A logout through instance 2 ends the session on all of them.
    let (status, _) = instances[2].call("POST", "/api/v1/auth/logout", Some(&staff), None);
    assert_eq!(status, 204);
    for (i, inst) in instances.iter().enumerate() {
        let (status, body) = may_submit(inst, &staff);
        assert_eq!(status, 401, "instance {i}: {body}");
        assert_eq!(body["error"]["code"], "unauthenticated");
    }

    // Graceful shutdown: each exits 0 on SIGTERM.
    for inst in instances {
        let exit = inst.stop();
        assert!(exit.success(), "{exit:?}");
    }
}
