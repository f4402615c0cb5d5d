//! Session lookup and permission check per layer, with yardsticks, in one
//! run: near-cache hit, Redis-backed (no near-cache), PostgreSQL (cache
//! disabled), a raw Redis `GET` and a raw primary-key `SELECT`.
//!
//! Needs the test PostgreSQL and Redis (`BISMAN_TEST_DATABASE_URL`,
//! `BISMAN_TEST_REDIS_URL`): `cargo bench -p bisman-cache --bench lookup`.

use std::time::Duration;

use bisman_cache::{
    Cache, CacheBuilder, CacheConfig, CacheMode, NearConfig, NewSession, TenantId, UserId, UserType,
};
use bisman_testkit::{redis_prefix, redis_url, TestDb};
use criterion::{criterion_group, criterion_main, Criterion};
use redis::AsyncCommands;

struct World {
    _db: TestDb,
    pool: sqlx::PgPool,
    near: Cache,
    redis: Cache,
    postgres: Cache,
    user: UserId,
    token: bisman_cache::SessionToken,
    raw: redis::aio::MultiplexedConnection,
    raw_manager: redis::aio::ConnectionManager,
    raw_key: String,
    token_hash: String,
}

async fn cache(pool: &sqlx::PgPool, mode: CacheMode, near: bool, prefix: &str) -> Cache {
    let config = CacheConfig {
        mode,
        prefix: prefix.into(),
        near: NearConfig {
            enabled: near,
            entry_ttl: Duration::from_secs(3600),
            ..NearConfig::default()
        },
        ..CacheConfig::default()
    };
    let c = CacheBuilder::new(config, pool.clone())
        .build()
        .await
        .unwrap();
    assert!(c.wait_until_synced(Duration::from_secs(10)).await);
    c
}

async fn world() -> World {
    let db = TestDb::migrated().await;
    let pool = db.pool.clone();
    let (tenant, user): (uuid::Uuid, i32) = sqlx::query_as(
        "WITH t AS (INSERT INTO tenants (slug, name) VALUES ('bench', 'Bench') RETURNING id),
              u AS (INSERT INTO users (tenant_id, email, password_hash, user_type) SELECT id, 'b@b.test', 'x', 'STAFF' FROM t RETURNING id, tenant_id)
         SELECT tenant_id, id FROM u",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "WITH sa_user AS (INSERT INTO users (tenant_id, email, password_hash, user_type) VALUES ('{tenant}', 'o@b.test', 'x', 'SUPER_ADMIN') RETURNING id),
              sa AS (INSERT INTO super_admins (tenant_id, user_id) SELECT '{tenant}', id FROM sa_user RETURNING id)
         UPDATE users SET super_admin_id = (SELECT id FROM sa) WHERE id = {user};
         INSERT INTO super_admin_modules (super_admin_id, module_id) SELECT u.super_admin_id, m.id FROM users u, modules m WHERE u.id = {user};
         WITH r AS (INSERT INTO roles (tenant_id, name) VALUES ('{tenant}', 'Clerk') RETURNING id)
         INSERT INTO user_roles (user_id, role_id) SELECT {user}, id FROM r;
         INSERT INTO role_permissions (role_id, page_id, actions)
             SELECT r.id, p.id, ARRAY['view','create'] FROM roles r, pages p WHERE r.tenant_id = '{tenant}';"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let prefix = redis_prefix();
    let redis_mode = CacheMode::parse(Some(&redis_url())).unwrap();
    let near = cache(&pool, redis_mode.clone(), true, &prefix).await;
    let redis = cache(&pool, redis_mode, false, &prefix).await;
    let postgres = cache(&pool, CacheMode::Disabled, false, &prefix).await;
    let issued = near
        .sessions()
        .create_session(&NewSession {
            tenant_id: TenantId(tenant),
            user_id: UserId(user),
            user_type: UserType::Staff,
            ip_address: None,
            user_agent: None,
        })
        .await
        .unwrap();
    let mut raw = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The reconnecting connection our Redis store uses, with the same
    // response timeout: separates the client's cost from ours.
    let raw_manager = redis::aio::ConnectionManager::new_with_config(
        redis::Client::open(redis_url()).unwrap(),
        redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_millis(500))),
    )
    .await
    .unwrap();
    // A raw value the size of a cached session.
    let raw_key = format!("{prefix}raw");
    let _: () = raw.set(&raw_key, "x".repeat(260)).await.unwrap();
    World {
        _db: db,
        pool,
        near,
        redis,
        postgres,
        user: UserId(user),
        token_hash: issued.token.hash().to_hex(),
        token: issued.token,
        raw,
        raw_manager,
        raw_key,
    }
}

fn lookups(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let w = rt.block_on(world());
    let mut g = c.benchmark_group("session_lookup");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, cache) in [
        ("l1_hit", &w.near),
        ("redis", &w.redis),
        ("postgres", &w.postgres),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                cache
                    .sessions()
                    .get_session_with_fallback(&w.token)
                    .await
                    .unwrap()
                    .unwrap()
            })
        });
    }
    g.bench_function("raw_redis_get", |b| {
        b.to_async(&rt).iter(|| async {
            let mut c = w.raw.clone();
            let v: String = c.get(&w.raw_key).await.unwrap();
            v
        })
    });
    g.bench_function("raw_redis_get_connection_manager", |b| {
        b.to_async(&rt).iter(|| async {
            let mut c = w.raw_manager.clone();
            let v: String = c.get(&w.raw_key).await.unwrap();
            v
        })
    });
    g.bench_function("raw_pk_select", |b| {
        b.to_async(&rt).iter(|| async {
            let id: i64 = sqlx::query_scalar("SELECT id FROM user_sessions WHERE token_hash = $1")
                .bind(&w.token_hash)
                .fetch_one(&w.pool)
                .await
                .unwrap();
            id
        })
    });
    g.finish();

    let mut g = c.benchmark_group("permission_check");
    g.measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, cache) in [
        ("l1_hit", &w.near),
        ("redis", &w.redis),
        ("postgres", &w.postgres),
    ] {
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                cache
                    .permissions()
                    .has_page_permission(w.user, UserType::Staff, "payments", "list")
                    .await
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, lookups);
criterion_main!(benches);
