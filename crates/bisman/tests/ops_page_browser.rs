//! The ops web page end to end, in headless Chromium driven over WebDriver
//! (`chromedriver`, Debian's `chromium` and `chromium-driver` packages):
//! a real `bisman serve --demo` on PostgreSQL and Redis; the demo super
//! admin logs in through the form, opens every page, sees figures that
//! match the database, presses "premake now" and sees the month count
//! change; the staff member is refused. A screenshot of every page (laptop
//! and phone widths) lands in `target/ops-page-screenshots/` (or
//! `BISMAN_SCREENSHOT_DIR`) for a reviewer to look at.
//!
//! `BISMAN_CHROMIUM` and `BISMAN_CHROMEDRIVER` override the binaries'
//! paths. Without them the test fails and names the packages to install:
//! it never passes by skipping.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bisman_testkit::{ServeProcess, TestDb};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMIUM_FLAGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    "--disable-dev-shm-usage",
    // The largest window screenshots may need: a headless window cannot
    // grow past the screen, which takes this size.
    "--window-size=1280,8000",
];
const LAPTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

fn binary(env: &str, default: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        Path::new(&path).exists(),
        "{path} is missing: the ops page browser test needs Debian's `chromium` and \
         `chromium-driver` packages (apt-get install -y chromium chromium-driver), \
         or {env} pointing at the binary"
    );
    path
}

/// `chromedriver` in a process group of its own, ended with its browsers.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(path: &str) -> Driver {
        use std::os::unix::process::CommandExt;
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any browser it left behind.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The browser session and where its pictures go.
struct Browser {
    client: Client,
    base: String,
    shots: PathBuf,
}

impl Browser {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn wait_for_path(&self, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = self.client.current_url().await.unwrap();
            let here = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_string(),
            };
            if here == wanted {
                return;
            }
            if Instant::now() > deadline {
                let page = self.client.source().await.unwrap_or_default();
                panic!("still at {here}, waiting for {wanted}; the page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Waits until `css`'s text is `wanted` (the next page has loaded).
    async fn wait_for_text(&self, css: &str, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let now = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if now == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} says {now:?}, waiting for {wanted:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn body(&self) -> String {
        self.text("body").await
    }

    /// A screenshot of the whole page at `width`, saved as `name`.
    async fn shot(&self, name: &str, (width, height): (u32, u32)) {
        // Grow the window until the whole page fits in the viewport (the
        // window's frame takes some of its height).
        let mut tall = height;
        for _ in 0..4 {
            self.client.set_window_size(width, tall).await.unwrap();
            let sizes = self
                .client
                .execute(
                    "return [window.innerHeight, document.documentElement.scrollHeight]",
                    vec![],
                )
                .await
                .unwrap();
            let inner = sizes[0].as_u64().unwrap_or(0);
            let full = sizes[1].as_u64().unwrap_or(0);
            if full <= inner || tall >= 8000 {
                break;
            }
            tall = u32::try_from((u64::from(tall) + full - inner).min(8000)).unwrap();
        }
        let png = self.client.screenshot().await.unwrap();
        self.client
            .set_window_size(LAPTOP.0, LAPTOP.1)
            .await
            .unwrap();
        let path = self.shots.join(name);
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
    }

    async fn log_in(&self, email: &str) {
        self.goto("/ops").await;
        self.wait_for_path("/ops/login").await;
        let field = |name: &'static str| async move {
            self.client
                .find(Locator::Css(&format!("input[name={name}]")))
                .await
                .unwrap()
        };
        field("tenant").await.send_keys("demo").await.unwrap();
        field("email").await.send_keys(email).await.unwrap();
        field("password")
            .await
            .send_keys(bisman_server::demo::DEMO_PASSWORD)
            .await
            .unwrap();
        self.client
            .find(Locator::Css("form button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
}

async fn months(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM bisman_partitions($1) WHERE NOT is_default")
        .bind(table)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("BISMAN_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ops-page-screenshots")
        });
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_page_in_headless_chromium() {
    let chromium = binary("BISMAN_CHROMIUM", "/usr/bin/chromium");
    let chromedriver = binary("BISMAN_CHROMEDRIVER", "/usr/bin/chromedriver");

    let db = TestDb::migrated().await;
    let redis = bisman_testkit::redis_url();
    let prefix = bisman_testkit::redis_prefix();
    let server = ServeProcess::start(
        env!("CARGO_BIN_EXE_bisman"),
        &[
            ("DATABASE_URL", &db.url),
            ("REDIS_URL", &redis),
            ("BISMAN_CACHE_PREFIX", &prefix),
            ("BISMAN_DEMO", "true"),
        ],
    );
    // The operator raised the months premade for messages: premake is due.
    sqlx::query(
        "UPDATE bisman_partitioned_tables SET premake_months = premake_months + 1 WHERE base_table = 'thread_messages'",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let driver = Driver::start(&chromedriver);
    let profile = std::env::temp_dir().join(format!("bisman-chromium-{}", uuid_like()));
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": chromium, "args": args },
    });
    let client = ClientBuilder::new(HttpConnector::new())
        .capabilities(caps.as_object().unwrap().clone())
        .connect(&driver.url)
        .await
        .expect("a Chromium session through chromedriver");
    let b = Browser {
        client,
        base: format!("http://{}", server.addr()),
        shots: screenshot_dir(),
    };

    // Logged out: the login form.
    b.goto("/ops/partitions").await;
    b.wait_for_path("/ops/login?next=/ops/partitions").await;
    b.shot("01-login.png", LAPTOP).await;

    // The super admin logs in and lands on the overview.
    b.log_in("owner@demo.test").await;
    b.wait_for_path("/ops").await;
    b.wait_for_text("main h1", "Overview").await;
    let overview = b.body().await;
    assert!(
        overview.contains(&db.name),
        "the database's name:\n{overview}"
    );
    assert!(overview.contains("owner@demo.test"));
    assert!(overview.contains("redis"), "the cache mode");

    // Partitions: the figures are the database's.
    b.goto("/ops/partitions").await;
    let before = months(&db, "thread_messages").await;
    let row = "tr[data-table=thread_messages]";
    assert_eq!(
        b.text(&format!("{row} td[data-field=months]")).await,
        before.to_string()
    );
    assert_eq!(
        b.text(&format!("{row} td[data-field=premade]")).await,
        "11 / 12"
    );
    for table in [
        "client_usage_events",
        "audit_logs",
        "message_reads",
        "message_reactions",
    ] {
        assert_eq!(
            b.text(&format!("tr[data-table={table}] td[data-field=months]"))
                .await,
            months(&db, table).await.to_string(),
            "{table}"
        );
    }
    assert!(b
        .body()
        .await
        .contains("thread_messages: 11 months premade, 12 configured"));
    b.shot("03-partitions.png", LAPTOP).await;
    b.shot("03-partitions-phone.png", PHONE).await;

    // "Premake now": one more month, the warning gone.
    b.client
        .find(Locator::Css("#premake-now"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_path("/ops/partitions?premake=ran").await;
    assert!(b.text(".flash").await.starts_with("Premake ran:"));
    assert_eq!(months(&db, "thread_messages").await, before + 1);
    assert_eq!(
        b.text(&format!("{row} td[data-field=months]")).await,
        (before + 1).to_string()
    );
    assert_eq!(
        b.text(&format!("{row} td[data-field=premade]")).await,
        "12 / 12"
    );
    b.shot("04-partitions-after-premake.png", LAPTOP).await;

    // The overview shows that run in the maintenance log.
    b.goto("/ops").await;
    let overview = b.body().await;
    assert!(overview.contains("premake"), "{overview}");
    assert!(overview.contains("partitions created"), "{overview}");
    b.shot("02-overview.png", LAPTOP).await;
    b.shot("02-overview-phone.png", PHONE).await;

    // Slow queries: a list, or the notice saying why there is none.
    b.goto("/ops/slow-queries?window=1h").await;
    let problem: Option<String> = sqlx::query_scalar("SELECT bisman_stat_statements_problem()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    match problem {
        Some(_) => assert!(b
            .text("#no-pg-stat-statements h2")
            .await
            .contains("pg_stat_statements is not available")),
        None => assert!(b.body().await.contains("By total time")),
    }
    b.shot("05-slow-queries.png", LAPTOP).await;

    // Table access: messages are there, partitions rolled up.
    b.goto("/ops/table-access").await;
    let live_is_partitioned: bool = sqlx::query_scalar(
        "SELECT relkind = 'p' FROM pg_class WHERE oid = 'thread_messages'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let partitioned = if live_is_partitioned {
        "thread_messages"
    } else {
        "thread_messages_partitioned"
    };
    let row = b.text(&format!("tr[data-table={partitioned}]")).await;
    let rolled_up: i64 =
        sqlx::query_scalar("SELECT partitions FROM v_table_access_patterns WHERE table_name = $1")
            .bind(partitioned)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(rolled_up > months(&db, "thread_messages").await);
    let expected = format!("{rolled_up} relations rolled up");
    assert!(row.contains(&expected), "{row:?} should say {expected:?}");
    b.shot("06-table-access.png", LAPTOP).await;
    b.shot("06-table-access-phone.png", PHONE).await;

    // Cache: some traffic between page views (each view samples the
    // counters, at most once a second), so that the chart has a shape.
    let staff = server.login("staff@demo.test", bisman_server::demo::DEMO_PASSWORD);
    for round in 0..6 {
        for i in 0..6 {
            // Known sessions hit; unknown tokens miss every layer.
            let token = if i <= round {
                staff.clone()
            } else {
                "0f".repeat(32)
            };
            server.call("GET", "/api/v1/me/permissions", Some(&token), None);
        }
        b.goto("/ops/cache").await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    b.goto("/ops/cache").await;
    let mut session_hits = 0;
    for layer in ["l1", "l2"] {
        let hits = b
            .text(&format!(
                "tr[data-ns=sessions][data-layer={layer}] td:nth-child(3)"
            ))
            .await;
        session_hits += hits.replace(',', "").parse::<u64>().unwrap();
    }
    assert!(session_hits > 0, "every page looked the session up");
    assert!(b.text("#keyspace").await.contains("keyspace_hits"));
    b.client
        .find(Locator::Css("svg.chart"))
        .await
        .expect("a hit-rate chart");
    b.shot("07-cache.png", LAPTOP).await;
    b.shot("07-cache-phone.png", PHONE).await;

    // Log out; the staff member is refused and gets no session.
    b.goto("/ops").await;
    b.client
        .find(Locator::Css("form.who button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_for_path("/ops/login").await;
    b.log_in("staff@demo.test").await;
    b.wait_for_text("main h1", "Not for this account").await;
    b.shot("08-refused-staff.png", LAPTOP).await;
    b.goto("/ops/cache").await;
    b.wait_for_path("/ops/login?next=/ops/cache").await;

    b.client.close().await.unwrap();
    drop(driver);
    let _ = std::fs::remove_dir_all(&profile);
    assert!(server.stop().success());
}

/// A name no other run uses.
fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
