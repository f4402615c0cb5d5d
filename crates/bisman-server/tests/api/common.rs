//! The test harness: a migrated database with the demo tenant and a second
//! tenant, the service around it, and a small request helper.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bisman_server::{ServeConfig, Service};
use bisman_testkit::TestDb;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const PASSWORD: &str = bisman_server::demo::DEMO_PASSWORD;

/// A running (in-process) service over its own database.
pub struct App {
    pub db: Arc<TestDb>,
    pub service: Service,
    pub router: Router,
}

/// A response: status, headers and the body parsed as JSON (Null if empty).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The stable error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error body>")
    }
}

/// Options for the service under test, with the scheduler off and an
/// in-memory cache (tests that need Redis set it).
pub fn config() -> ServeConfig {
    let mut config = ServeConfig {
        maintenance: false,
        ..ServeConfig::default()
    };
    config.cache.redis_url = Some("memory".into());
    config.cache.cache_prefix = bisman_testkit::redis_prefix();
    config
}

impl App {
    /// The demo tenant plus tenant `acme` (one super admin, one thread).
    pub async fn start() -> App {
        Self::start_with(config()).await
    }

    pub async fn start_with(config: ServeConfig) -> App {
        let db = TestDb::migrated().await;
        bisman_server::demo::seed(&db.pool)
            .await
            .expect("seed demo");
        seed_acme(&db.pool).await;
        let service = Service::new(&config, db.pool.clone())
            .await
            .expect("service");
        let router = service.router();
        App {
            db: Arc::new(db),
            service,
            router,
        }
    }

    pub fn pool(&self) -> &sqlx::PgPool {
        &self.db.pool
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        self.send(req).await
    }

    /// Sends a raw request.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: impl AsRef<str>, token: &str) -> Reply {
        self.call(Method::GET, path.as_ref(), Some(token), None)
            .await
    }

    pub async fn post(&self, path: impl AsRef<str>, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path.as_ref(), Some(token), Some(body))
            .await
    }

    /// Logs in and returns the session token.
    pub async fn login(&self, tenant: &str, email: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({"tenant": tenant, "email": email, "password": PASSWORD})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login {email}: {}", r.text);
        r.body["token"].as_str().unwrap().to_string()
    }

    pub async fn demo(&self, who: &str) -> String {
        self.login("demo", &format!("{who}@demo.test")).await
    }

    /// A scalar from the database.
    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        sqlx::query_scalar(sql)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    /// A demo thread and its newest message.
    pub async fn demo_thread(&self) -> (String, String) {
        let f = bisman_server::demo::facts(self.pool()).await.unwrap();
        (f.thread_id, f.message_id)
    }

    /// An `acme` thread and message (another tenant's).
    pub async fn acme_thread(&self) -> (String, String) {
        ("thr_acme".into(), "msg_acme".into())
    }

    pub async fn user_id(&self, email: &str) -> i32 {
        sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(self.pool())
            .await
            .unwrap()
    }

    pub async fn role_id(&self, name: &str) -> i32 {
        sqlx::query_scalar(
            "SELECT r.id FROM roles r JOIN tenants t ON t.id = r.tenant_id WHERE t.slug = 'demo' AND r.name = $1",
        )
        .bind(name)
        .fetch_one(self.pool())
        .await
        .unwrap()
    }
}

/// Tenant `acme`: super admin eve (every module), a thread with a message,
/// a role, and a platform operator.
async fn seed_acme(pool: &sqlx::PgPool) {
    let hash = bisman_server::auth::password::hash(PASSWORD).unwrap();
    sqlx::raw_sql(&format!(
        r#"
        WITH t AS (INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id),
             u AS (INSERT INTO users (tenant_id, email, name, password_hash, user_type)
                   SELECT id, 'eve@acme.test', 'eve', '{hash}', 'SUPER_ADMIN' FROM t RETURNING id, tenant_id),
             s AS (INSERT INTO super_admins (tenant_id, user_id) SELECT tenant_id, id FROM u RETURNING id, user_id)
        INSERT INTO super_admin_modules (super_admin_id, module_id) SELECT s.id, m.id FROM s, modules m;
        UPDATE users SET super_admin_id = (SELECT id FROM super_admins WHERE user_id = users.id)
        WHERE email = 'eve@acme.test';
        INSERT INTO users (tenant_id, email, name, password_hash, user_type)
        SELECT id, 'op@acme.test', 'op', '{hash}', 'ADMIN' FROM tenants WHERE slug = 'acme';
        INSERT INTO platform_operators (user_id, tenant_id)
        SELECT id, tenant_id FROM users WHERE email = 'op@acme.test';
        INSERT INTO roles (tenant_id, name) SELECT id, 'Acme role' FROM tenants WHERE slug = 'acme';
        INSERT INTO threads (id, tenant_id, title, created_by, last_message_at)
        SELECT 'thr_acme', tenant_id, 'Acme only', id, now() FROM users WHERE email = 'eve@acme.test';
        INSERT INTO thread_participants (thread_id, user_id)
        SELECT 'thr_acme', id FROM users WHERE email = 'eve@acme.test';
        INSERT INTO thread_messages (id, tenant_id, "threadId", "senderId", content)
        SELECT 'msg_acme', tenant_id, 'thr_acme', id, 'secret of acme' FROM users WHERE email = 'eve@acme.test';
        "#
    ))
    .execute(pool)
    .await
    .expect("seed acme");
}
