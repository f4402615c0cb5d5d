//! The demo tenant seeded by `bisman serve --demo`.
//!
//! One tenant (`demo`) with a super admin, an admin, a manager, a staff
//! member and a platform operator (who assigns modules to super admins and
//! can deactivate them, and holds no module permissions), roles with page
//! permissions, three threads of messages over the last three months with
//! read receipts and reactions, expenses waiting for the manager's approval
//! and a few usage events. Seeding is idempotent: an existing `demo` tenant
//! is left as it is.

use anyhow::Context;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::auth::password;

/// The demo users' shared password (printed by `bisman serve --demo`).
pub const DEMO_PASSWORD: &str = "demo-password";

/// A seeded demo account.
#[derive(Debug, Clone)]
pub struct DemoUser {
    /// Login e-mail.
    pub email: &'static str,
    /// ERP user type.
    pub user_type: &'static str,
    /// Role name (none for the super admin, who holds every assigned module).
    pub role: Option<&'static str>,
}

/// The demo accounts, in the order they are created.
pub const DEMO_USERS: &[DemoUser] = &[
    DemoUser {
        email: "owner@demo.test",
        user_type: "SUPER_ADMIN",
        role: None,
    },
    DemoUser {
        email: "admin@demo.test",
        user_type: "ADMIN",
        role: Some("Administrator"),
    },
    DemoUser {
        email: "manager@demo.test",
        user_type: "MANAGER",
        role: Some("Finance manager"),
    },
    DemoUser {
        email: "staff@demo.test",
        user_type: "STAFF",
        role: Some("Staff"),
    },
    DemoUser {
        email: "operator@demo.test",
        user_type: "ADMIN",
        role: None,
    },
];

/// The demo's platform operator (index in [`DEMO_USERS`]).
const OPERATOR: usize = 4;

/// A page grant: (module, page, actions).
type Grant = (&'static str, &'static str, &'static [&'static str]);

/// Role name → the pages it grants.
const ROLES: &[(&str, &[Grant])] = &[
    (
        "Administrator",
        &[
            ("admin", "roles", &["view", "create", "edit", "delete"]),
            ("admin", "users", &["view", "create", "edit"]),
            ("admin", "ops", &["view"]),
            ("expenses", "list", &["view"]),
            ("messaging", "threads", &["view", "create"]),
            ("reports", "usage", &["view"]),
        ],
    ),
    (
        "Finance manager",
        &[
            ("payments", "list", &["view"]),
            ("payments", "create", &["view", "create"]),
            ("expenses", "list", &["view"]),
            ("expenses", "approvals", &["view", "approve"]),
            ("reports", "finance", &["view"]),
            ("messaging", "threads", &["view", "create"]),
        ],
    ),
    (
        "Staff",
        &[
            ("expenses", "list", &["view"]),
            ("expenses", "submit", &["view", "create"]),
            ("messaging", "threads", &["view", "create"]),
        ],
    ),
];

/// Seeds the demo tenant unless it exists; returns whether it seeded.
pub async fn seed(pool: &PgPool) -> anyhow::Result<bool> {
    let mut tx = pool.begin().await?;
    // Serialise concurrent seeders (several demo instances starting together).
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bisman-demo-seed'))")
        .execute(&mut *tx)
        .await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM tenants WHERE slug = 'demo')")
            .fetch_one(&mut *tx)
            .await?;
    if exists {
        return Ok(false);
    }
    let hash = password::hash(DEMO_PASSWORD)
        .map_err(|e| anyhow::anyhow!("hashing the demo password: {e}"))?;
    let tenant: Uuid = sqlx::query_scalar(
        "INSERT INTO tenants (slug, name) VALUES ('demo', 'Demo Ltd') RETURNING id",
    )
    .fetch_one(&mut *tx)
    .await?;

    let mut user_ids = Vec::new();
    for u in DEMO_USERS {
        let id: i32 = sqlx::query_scalar(
            "INSERT INTO users (tenant_id, email, name, password_hash, user_type) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(tenant)
        .bind(u.email)
        .bind(u.email.split('@').next().unwrap_or(u.email))
        .bind(&hash)
        .bind(u.user_type)
        .fetch_one(&mut *tx)
        .await?;
        user_ids.push(id);
    }
    let super_admin: i32 = sqlx::query_scalar(
        "INSERT INTO super_admins (tenant_id, user_id) VALUES ($1, $2) RETURNING id",
    )
    .bind(tenant)
    .bind(user_ids[0])
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE users SET super_admin_id = $1 WHERE tenant_id = $2 AND id <> $3")
        .bind(super_admin)
        .bind(tenant)
        .bind(user_ids[OPERATOR])
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO platform_operators (user_id, tenant_id) VALUES ($1, $2)")
        .bind(user_ids[OPERATOR])
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO super_admin_modules (super_admin_id, module_id) SELECT $1, id FROM modules",
    )
    .bind(super_admin)
    .execute(&mut *tx)
    .await?;

    seed_roles(&mut tx, tenant, &user_ids).await?;
    seed_messages(&mut tx, tenant, &user_ids[..OPERATOR]).await?;
    seed_expenses(&mut tx, tenant, &user_ids).await?;
    tx.commit().await?;

    // The ERP's JSONB receipts and reactions, normalised as spec §3 does.
    sqlx::query("SELECT * FROM migrate_readby_to_normalized()")
        .execute(pool)
        .await
        .context("normalising reads")?;
    sqlx::query("SELECT * FROM migrate_reactions_to_normalized()")
        .execute(pool)
        .await
        .context("normalising reactions")?;
    Ok(true)
}

async fn seed_roles(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    user_ids: &[i32],
) -> anyhow::Result<()> {
    for (name, grants) in ROLES {
        let role: i32 =
            sqlx::query_scalar("INSERT INTO roles (tenant_id, name) VALUES ($1, $2) RETURNING id")
                .bind(tenant)
                .bind(name)
                .fetch_one(&mut **tx)
                .await?;
        for (module, page, actions) in *grants {
            let actions: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
            sqlx::query(
                "INSERT INTO role_permissions (role_id, page_id, actions)
                 SELECT $1, p.id, $4 FROM pages p JOIN modules m ON m.id = p.module_id WHERE m.key = $2 AND p.key = $3",
            )
            .bind(role)
            .bind(module)
            .bind(page)
            .bind(&actions)
            .execute(&mut **tx)
            .await?;
        }
        for (user, u) in user_ids.iter().zip(DEMO_USERS) {
            if u.role == Some(name) {
                sqlx::query("INSERT INTO user_roles (user_id, role_id) VALUES ($1, $2)")
                    .bind(user)
                    .bind(role)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    Ok(())
}

async fn seed_messages(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    user_ids: &[i32],
) -> anyhow::Result<()> {
    let titles = ["Month-end close", "Travel expenses policy", "Office move"];
    for (t, title) in titles.iter().enumerate() {
        let thread = format!("thr_{}", Uuid::new_v4().simple());
        sqlx::query("INSERT INTO threads (id, tenant_id, title, created_by, last_message_at) VALUES ($1, $2, $3, $4, now())")
            .bind(&thread)
            .bind(tenant)
            .bind(title)
            .bind(user_ids[t % user_ids.len()])
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "INSERT INTO thread_participants (thread_id, user_id) SELECT $1, unnest($2::int[])",
        )
        .bind(&thread)
        .bind(user_ids)
        .execute(&mut **tx)
        .await?;
        // 60 messages over the last 90 days; everyone but the newest few
        // messages' readers has read them; a sprinkle of reactions.
        sqlx::query(
            r#"INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content, "readBy", reactions, "createdAt", "updatedAt")
               SELECT 'msg_' || md5($1 || g::text), $2, $1, u.ids[1 + g % array_length(u.ids, 1)],
                      'Message ' || g || ' in ' || $3,
                      CASE WHEN g < 55 THEN (SELECT jsonb_agg(jsonb_build_object('userId', x, 'readAt',
                              to_char(ts + interval '5 minutes', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))) FROM unnest(u.ids) x)
                           ELSE '[]'::jsonb END,
                      CASE WHEN g % 7 = 0 THEN jsonb_build_array(jsonb_build_object('userId', u.ids[1], 'emoji', '👍'))
                           ELSE '[]'::jsonb END,
                      ts, ts
               FROM generate_series(1, 60) g
               CROSS JOIN (SELECT $4::int[] AS ids) u
               CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE 'UTC') - make_interval(hours => (60 - g) * 36) AS ts) t"#,
        )
        .bind(&thread)
        .bind(tenant)
        .bind(title)
        .bind(user_ids)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn seed_expenses(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    user_ids: &[i32],
) -> anyhow::Result<()> {
    let (manager, staff) = (user_ids[2], user_ids[3]);
    for (amount, what) in [
        ("42.50", "Taxi to the airport"),
        ("180.00", "Hotel, one night"),
        ("12.90", "Lunch with a client"),
    ] {
        let expense: i32 = sqlx::query_scalar(
            "INSERT INTO expenses (tenant_id, submitted_by, amount, description) VALUES ($1, $2, $3::numeric, $4) RETURNING id",
        )
        .bind(tenant)
        .bind(staff)
        .bind(amount)
        .bind(what)
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO approvals (tenant_id, expense_id, approver_id) VALUES ($1, $2, $3)",
        )
        .bind(tenant)
        .bind(expense)
        .bind(manager)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "INSERT INTO client_usage_events (tenant_id, user_id, event_type, module, page, occurred_at)
         SELECT $1, u, e, 'expenses', 'list', now() - make_interval(hours => g * 7)
         FROM unnest($2::int[]) u, unnest(ARRAY['page_view', 'click']) e, generate_series(0, 20) g",
    )
    .bind(tenant)
    .bind(user_ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ids the walk-through refers to.
#[derive(Debug, Clone)]
pub struct DemoFacts {
    /// The first thread (by title).
    pub thread_id: String,
    /// Its newest message.
    pub message_id: String,
    /// The `Staff` role.
    pub staff_role_id: i32,
}

/// Reads the ids the walk-through uses from the demo tenant.
pub async fn facts(pool: &PgPool) -> anyhow::Result<DemoFacts> {
    let (thread_id, message_id): (String, String) = sqlx::query_as(
        r#"SELECT t.id, m.id FROM threads t JOIN tenants n ON n.id = t.tenant_id
           JOIN LATERAL (SELECT id FROM thread_messages WHERE "threadId" = t.id AND NOT "isDeleted"
                         ORDER BY "createdAt" DESC, id DESC LIMIT 1) m ON true
           WHERE n.slug = 'demo' ORDER BY t.title LIMIT 1"#,
    )
    .fetch_one(pool)
    .await
    .context("reading the demo thread")?;
    let staff_role_id: i32 = sqlx::query_scalar(
        "SELECT r.id FROM roles r JOIN tenants n ON n.id = r.tenant_id WHERE n.slug = 'demo' AND r.name = 'Staff'",
    )
    .fetch_one(pool)
    .await
    .context("reading the demo Staff role")?;
    Ok(DemoFacts {
        thread_id,
        message_id,
        staff_role_id,
    })
}
