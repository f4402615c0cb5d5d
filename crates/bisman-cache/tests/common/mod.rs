//! Shared fixtures of the cache tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bisman_cache::{
    Cache, CacheBuilder, CacheConfig, CacheMode, NearConfig, RoleId, SuperAdminId, TenantId, UserId,
};
use bisman_testkit::{redis_prefix, redis_url, RedisCluster};
use sqlx::PgPool;
use uuid::Uuid;

/// The backends every conformance test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Disabled,
    Memory,
    Redis,
    Cluster,
    Postgres,
}

impl Backend {
    pub fn mode(self) -> CacheMode {
        match self {
            Backend::Disabled => CacheMode::Disabled,
            Backend::Memory => CacheMode::Memory,
            Backend::Redis => CacheMode::parse(Some(&redis_url())).unwrap(),
            Backend::Cluster => CacheMode::parse(Some(&RedisCluster::shared().url())).unwrap(),
            Backend::Postgres => CacheMode::Postgres,
        }
    }
}

/// A configuration for tests: a private prefix and a short lease, so that
/// waits in failure tests stay short.
pub fn config(mode: CacheMode, prefix: &str) -> CacheConfig {
    CacheConfig {
        mode,
        prefix: prefix.to_string(),
        near: NearConfig {
            enabled: true,
            capacity: 10_000,
            entry_ttl: Duration::from_secs(3),
            subscription_lease: Duration::from_millis(600),
        },
        store_timeout: Duration::from_millis(300),
        ..CacheConfig::default()
    }
}

/// A cache on `backend`, its near-cache synced when it has one.
pub async fn cache(backend: Backend, pool: &PgPool, prefix: &str) -> Cache {
    let c = CacheBuilder::new(config(backend.mode(), prefix), pool.clone())
        .build()
        .await
        .unwrap();
    assert!(
        c.wait_until_synced(Duration::from_secs(10)).await,
        "near-cache never synced"
    );
    c
}

/// Rows the permission tests reason about.
#[derive(Debug, Clone, Copy)]
pub struct Fixture {
    pub tenant: TenantId,
    pub owner: UserId,
    pub sa: SuperAdminId,
    pub staff: UserId,
    pub clerk: RoleId,
    pub outsider: UserId,
}

/// Tenant `acme`: a super admin (owner) assigned payments and expenses; a
/// staff member with role Clerk (payments/list view; expenses/list view and
/// create; reports/usage view, whose module is not assigned); a role of
/// another tenant assigned to the staff member by mistake (must not count);
/// and a user of that other tenant.
pub async fn fixture(pool: &PgPool) -> Fixture {
    let tenant: Uuid =
        sqlx::query_scalar("INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id")
            .fetch_one(pool)
            .await
            .unwrap();
    let other: Uuid = sqlx::query_scalar(
        "INSERT INTO tenants (slug, name) VALUES ('other', 'Other') RETURNING id",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    let user = |email: &'static str, t: Uuid, kind: &'static str| async move {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO users (tenant_id, email, password_hash, user_type) VALUES ($1, $2, 'x', $3) RETURNING id",
        )
        .bind(t)
        .bind(email)
        .bind(kind)
        .fetch_one(pool)
        .await
        .unwrap();
        id
    };
    let owner = user("owner@acme.test", tenant, "SUPER_ADMIN").await;
    let staff = user("staff@acme.test", tenant, "STAFF").await;
    let outsider = user("x@other.test", other, "ADMIN").await;
    let sa: i32 = sqlx::query_scalar(
        "INSERT INTO super_admins (tenant_id, user_id) VALUES ($1, $2) RETURNING id",
    )
    .bind(tenant)
    .bind(owner)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::raw_sql(&format!(
        "UPDATE users SET super_admin_id = {sa} WHERE tenant_id = '{tenant}';
         INSERT INTO super_admin_modules (super_admin_id, module_id)
             SELECT {sa}, id FROM modules WHERE key IN ('payments', 'expenses');"
    ))
    .execute(pool)
    .await
    .unwrap();
    let role = |t: Uuid,
                name: &'static str,
                grants: &'static [(&'static str, &'static str, &'static str)]| async move {
        let id: i32 =
            sqlx::query_scalar("INSERT INTO roles (tenant_id, name) VALUES ($1, $2) RETURNING id")
                .bind(t)
                .bind(name)
                .fetch_one(pool)
                .await
                .unwrap();
        for (module, page, actions) in grants {
            sqlx::query(
                "INSERT INTO role_permissions (role_id, page_id, actions)
                 SELECT $1, p.id, string_to_array($4, ',') FROM pages p JOIN modules m ON m.id = p.module_id
                 WHERE m.key = $2 AND p.key = $3",
            )
            .bind(id)
            .bind(module)
            .bind(page)
            .bind(actions)
            .execute(pool)
            .await
            .unwrap();
        }
        id
    };
    let clerk = role(
        tenant,
        "Clerk",
        &[
            ("payments", "list", "view"),
            ("expenses", "list", "view,create"),
            ("reports", "usage", "view"),
        ],
    )
    .await;
    let foreign = role(other, "Evil", &[("payments", "refunds", "view,delete")]).await;
    for r in [clerk, foreign] {
        sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2)")
            .bind(staff)
            .bind(r)
            .execute(pool)
            .await
            .unwrap();
    }
    Fixture {
        tenant: TenantId(tenant),
        owner: UserId(owner),
        sa: SuperAdminId(sa),
        staff: UserId(staff),
        clerk: RoleId(clerk),
        outsider: UserId(outsider),
    }
}

/// Takes payments/list away from a role (in PostgreSQL only).
pub async fn revoke_page(pool: &PgPool, role: RoleId, module: &str, page: &str) {
    sqlx::query(
        "DELETE FROM role_permissions WHERE role_id = $1 AND page_id =
             (SELECT p.id FROM pages p JOIN modules m ON m.id = p.module_id WHERE m.key = $2 AND p.key = $3)",
    )
    .bind(role.0)
    .bind(module)
    .bind(page)
    .execute(pool)
    .await
    .unwrap();
}

/// A fresh prefix.
pub fn prefix() -> String {
    redis_prefix()
}

/// Shared handle for caches built on in-process store and bus.
pub fn shared_memory() -> (
    Arc<bisman_cache::store::MemoryStore>,
    Arc<bisman_cache::bus::LocalBus>,
) {
    (
        Arc::new(bisman_cache::store::MemoryStore::new()),
        Arc::new(bisman_cache::bus::LocalBus::new()),
    )
}
