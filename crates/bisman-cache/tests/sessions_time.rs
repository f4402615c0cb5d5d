//! Sliding and absolute session expiry with time moved by the test: an
//! expired session is not returned from any layer.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use bisman_cache::{
    Cache, CacheBuilder, CacheMode, ManualClock, NewSession, SessionToken, UserType,
};
use bisman_testkit::TestDb;
use chrono::{Duration, Utc};
use common::*;

async fn with_clock(
    mode: CacheMode,
    db: &TestDb,
    prefix: &str,
    clock: &ManualClock,
    max_life: StdDuration,
) -> Cache {
    let mut cfg = config(mode, prefix);
    cfg.session_max_lifetime = max_life;
    let c = CacheBuilder::new(cfg, db.pool.clone())
        .clock(Arc::new(clock.clone()))
        .build()
        .await
        .unwrap();
    assert!(c.wait_until_synced(StdDuration::from_secs(10)).await);
    c
}

async fn live(c: &Cache, t: &SessionToken) -> bool {
    c.sessions()
        .get_session_with_fallback(t)
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn activity_slides_the_idle_hour_and_idleness_ends_it_everywhere() {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let p = prefix();
    let clock = ManualClock::new(Utc::now());
    let week = StdDuration::from_secs(7 * 86400);
    let near = with_clock(Backend::Redis.mode(), &db, &p, &clock, week).await;
    let pg_only = with_clock(CacheMode::Disabled, &db, &p, &clock, week).await;
    let new = NewSession {
        tenant_id: f.tenant,
        user_id: f.staff,
        user_type: UserType::Staff,
        ip_address: None,
        user_agent: None,
    };
    let s = near.sessions().create_session(&new).await.unwrap();

    clock.advance(Duration::minutes(30));
    assert!(live(&near, &s.token).await);
    clock.advance(Duration::minutes(45)); // 75 minutes after login, 45 after activity
    assert!(
        live(&near, &s.token).await,
        "activity slid the idle timeout"
    );
    assert!(live(&pg_only, &s.token).await, "and reached PostgreSQL");
    let l2_only = with_clock(Backend::Redis.mode(), &db, &p, &clock, week).await;
    assert!(live(&l2_only, &s.token).await, "and the shared copy");

    clock.advance(Duration::minutes(61));
    assert!(!live(&near, &s.token).await, "near-cache");
    let fresh = with_clock(Backend::Redis.mode(), &db, &p, &clock, week).await;
    assert!(!live(&fresh, &s.token).await, "shared store");
    assert!(!live(&pg_only, &s.token).await, "PostgreSQL");
    assert!(near
        .sessions()
        .list_user_sessions(f.staff)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn the_absolute_lifetime_ends_even_an_active_session() {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let clock = ManualClock::new(Utc::now());
    let c = with_clock(
        Backend::Memory.mode(),
        &db,
        &prefix(),
        &clock,
        StdDuration::from_secs(2 * 3600),
    )
    .await;
    let new = NewSession {
        tenant_id: f.tenant,
        user_id: f.staff,
        user_type: UserType::Staff,
        ip_address: None,
        user_agent: None,
    };
    let s = c.sessions().create_session(&new).await.unwrap();
    for _ in 0..2 {
        clock.advance(Duration::minutes(50));
        assert!(live(&c, &s.token).await);
    }
    clock.advance(Duration::minutes(25)); // 125 minutes: active, but past two hours
    assert!(!live(&c, &s.token).await);
    // A refresh cannot outlive the session either.
    assert!(c
        .sessions()
        .refresh(&s.refresh_token)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn activity_is_not_written_to_postgresql_on_every_request() {
    let db = TestDb::migrated().await;
    let f = fixture(&db.pool).await;
    let clock = ManualClock::new(Utc::now());
    let c = with_clock(
        Backend::Redis.mode(),
        &db,
        &prefix(),
        &clock,
        StdDuration::from_secs(86400),
    )
    .await;
    let new = NewSession {
        tenant_id: f.tenant,
        user_id: f.staff,
        user_type: UserType::Staff,
        ip_address: None,
        user_agent: None,
    };
    let s = c.sessions().create_session(&new).await.unwrap();
    let seen = || async {
        sqlx::query_scalar::<_, chrono::DateTime<Utc>>(
            "SELECT last_seen_at FROM user_sessions WHERE id = $1",
        )
        .bind(s.session.session_id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let t0 = seen().await;
    for _ in 0..10 {
        clock.advance(Duration::seconds(20));
        assert!(live(&c, &s.token).await);
    }
    assert_eq!(
        seen().await,
        t0,
        "200 seconds of requests: no database write yet"
    );
    clock.advance(Duration::minutes(3));
    assert!(live(&c, &s.token).await);
    assert!(seen().await > t0, "written once it is minutes behind");
}
