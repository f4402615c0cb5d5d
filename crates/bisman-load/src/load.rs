//! The running load: workers making the mix, the revocation prober, the
//! memory sampler, and the handle a test or the CLI steers it with (phases,
//! instances taken out of rotation, waits counted in requests, stop).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::client::{Http, Reply};
use crate::mix::{Mix, Op};
use crate::probe::Model;
use crate::report::{self, Report};
use crate::stats::{Outcome, Phase, Stats};
use crate::writes::Acknowledged;
use crate::LoadError;

/// An instance to send requests to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`.
    pub base_url: String,
    /// Its process id, to read its memory (none for a remote instance).
    pub pid: Option<u32>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The instances, used round-robin like a load balancer would.
    pub targets: Vec<Target>,
    /// Tenant slug.
    pub tenant: String,
    /// The accounts' password.
    pub password: String,
    /// Worker accounts (e-mails), assigned round-robin to workers.
    pub users: Vec<String>,
    /// Who edits the probed role (must hold what it grants).
    pub admin: String,
    /// A user holding the probed role, whose checks are judged.
    pub probe_user: String,
    /// The role the prober edits.
    pub probe_role: String,
    /// The permission the prober revokes and grants: module, page, action.
    pub probe_permission: (String, String, String),
    /// Concurrent workers (each makes one request at a time).
    pub concurrency: usize,
    /// What the workers do.
    pub mix: Mix,
    /// Time between a revocation and the next grant (and back); `None`: no prober.
    pub revoke_every: Option<Duration>,
    /// Per-request timeout (then it counts as a transport failure).
    pub request_timeout: Duration,
    /// Remember every token issued (tests scan storage and logs for them).
    pub keep_secrets: bool,
    /// Seed of the workers' choices.
    pub seed: u64,
    /// After each acknowledged post, read the thread's newest page with the
    /// same session (on the next instance in rotation) and check the post
    /// is there: read-your-writes, which read replicas must not break.
    pub check_read_your_writes: bool,
}

impl LoadConfig {
    /// The demo tenant of `bisman serve --demo`: four workers' accounts, the
    /// owner revoking and granting `expenses/submit` `create` on `Staff`.
    pub fn demo(targets: Vec<Target>, password: &str) -> Self {
        Self {
            targets,
            tenant: "demo".into(),
            password: password.into(),
            users: ["staff", "manager", "admin", "owner"]
                .iter()
                .map(|u| format!("{u}@demo.test"))
                .collect(),
            admin: "owner@demo.test".into(),
            probe_user: "staff@demo.test".into(),
            probe_role: "Staff".into(),
            probe_permission: ("expenses".into(), "submit".into(), "create".into()),
            concurrency: 8,
            mix: Mix::default(),
            revoke_every: Some(Duration::from_millis(200)),
            request_timeout: Duration::from_secs(30),
            keep_secrets: false,
            seed: 7,
            check_read_your_writes: false,
        }
    }
}

/// One instance's state during the run.
struct TargetState {
    base_url: String,
    pid: Option<u32>,
    up: AtomicBool,
    rss_start: Option<u64>,
    rss_max: AtomicU64,
}

/// What every task shares.
struct Shared {
    config: LoadConfig,
    http: Http,
    targets: Vec<TargetState>,
    next: AtomicUsize,
    stop: AtomicBool,
    stats: Mutex<Stats>,
    phase: AtomicUsize,
    phase_done: AtomicU64,
    total_done: AtomicU64,
    model: Model,
    acked: Mutex<Acknowledged>,
    secrets: Mutex<Vec<String>>,
    probe_query: String,
    ryw: report::ReadYourWritesCounters,
}

/// A running load.
pub struct Load {
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Load {
    /// Logs the workers in and starts them, the prober and the sampler, in
    /// a first phase named `steady` (strict).
    pub async fn start(config: LoadConfig) -> Result<Load, LoadError> {
        if config.targets.is_empty() || config.concurrency == 0 || config.users.is_empty() {
            return Err(LoadError::Config(
                "at least one target, one worker and one account are needed".into(),
            ));
        }
        let (module, page, action) = &config.probe_permission;
        let probe_query =
            format!("/api/v1/permissions/check?module={module}&page={page}&action={action}");
        let targets = config
            .targets
            .iter()
            .map(|t| {
                let rss = t.pid.and_then(crate::rss_kib);
                TargetState {
                    base_url: t.base_url.trim_end_matches('/').to_string(),
                    pid: t.pid,
                    up: AtomicBool::new(true),
                    rss_start: rss,
                    rss_max: AtomicU64::new(rss.unwrap_or(0)),
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            http: Http::new(config.request_timeout),
            targets,
            next: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            stats: Mutex::new(Stats {
                phases: vec![Phase {
                    name: "steady".into(),
                    strict: true,
                    started: Instant::now(),
                    ended: None,
                }],
                ..Stats::default()
            }),
            phase: AtomicUsize::new(0),
            phase_done: AtomicU64::new(0),
            total_done: AtomicU64::new(0),
            model: Model::default(),
            acked: Mutex::default(),
            secrets: Mutex::default(),
            probe_query,
            ryw: Default::default(),
            config,
        });
        let mut workers = Vec::new();
        for i in 0..shared.config.concurrency {
            let email = shared.config.users[i % shared.config.users.len()].clone();
            workers.push(Worker::new(&shared, i, email).await?);
        }
        let prober = match shared.config.revoke_every {
            Some(every) => Some(Prober::new(&shared, every).await?),
            None => None,
        };
        let mut tasks = JoinSet::new();
        for w in workers {
            tasks.spawn(w.run(shared.clone()));
        }
        if let Some(p) = prober {
            tasks.spawn(p.run(shared.clone()));
        }
        tasks.spawn(sample_memory(shared.clone()));
        Ok(Load {
            shared,
            tasks,
            started: Instant::now(),
        })
    }

    /// Ends the current phase and starts one named `name`; in a phase that
    /// is not `strict`, 503s are expected (a fault is on).
    pub fn phase(&self, name: &str, strict: bool) {
        let mut stats = lock(&self.shared.stats);
        let now = Instant::now();
        if let Some(p) = stats.phases.last_mut() {
            p.ended = Some(now);
        }
        stats.phases.push(Phase {
            name: name.into(),
            strict,
            started: now,
            ended: None,
        });
        self.shared
            .phase
            .store(stats.phases.len() - 1, Ordering::SeqCst);
        self.shared.phase_done.store(0, Ordering::SeqCst);
    }

    /// Takes instance `i` out of rotation (before killing it) or back in;
    /// failures on an instance out of rotation count as dropped.
    pub fn set_up(&self, i: usize, up: bool) {
        if let Some(t) = self.shared.targets.get(i) {
            t.up.store(up, Ordering::SeqCst);
        }
    }

    /// Requests finished so far.
    pub fn requests(&self) -> u64 {
        self.shared.total_done.load(Ordering::Relaxed)
    }

    /// Requests finished in the current phase.
    pub fn done_in_phase(&self) -> u64 {
        self.shared.phase_done.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests finished in the current phase (whatever
    /// their outcome), or `timeout` passed; whether they did.
    pub async fn wait_requests(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.done_in_phase() < n {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Checks of the probed permission judged so far (made while revoked).
    pub fn judged_checks(&self) -> u64 {
        self.shared.model.judged.load(Ordering::SeqCst)
    }

    /// Revocations acknowledged so far.
    pub fn revocations(&self) -> u64 {
        self.shared.model.revokes.load(Ordering::SeqCst)
    }

    /// The writes acknowledged so far.
    pub fn acknowledged(&self) -> Acknowledged {
        lock(&self.shared.acked).clone()
    }

    /// Every session and refresh token issued (with `keep_secrets`).
    pub fn secrets(&self) -> Vec<String> {
        lock(&self.shared.secrets).clone()
    }

    /// Stops every task (requests in flight finish) and reports.
    pub async fn stop(mut self) -> Report {
        self.shared.stop.store(true, Ordering::SeqCst);
        let grace = self.shared.config.request_timeout + Duration::from_secs(5);
        let _ = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        self.tasks.abort_all();
        let now = Instant::now();
        let mut stats = std::mem::take(&mut *lock(&self.shared.stats));
        if let Some(p) = stats.phases.last_mut() {
            p.ended = Some(now);
        }
        let instances = self
            .shared
            .targets
            .iter()
            .map(|t| report::InstanceMemory {
                url: t.base_url.clone(),
                rss_start_kib: t.rss_start,
                rss_max_kib: t.pid.map(|_| t.rss_max.load(Ordering::SeqCst)),
                rss_end_kib: t.pid.and_then(crate::rss_kib),
            })
            .collect();
        report::build(
            &mut stats,
            now - self.started,
            instances,
            &self.shared.model,
            &lock(&self.shared.acked),
            &self.shared.ryw,
        )
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The next instance in rotation.
    fn pick(&self) -> usize {
        let n = self.targets.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.targets[i].up.load(Ordering::Relaxed))
            .unwrap_or(start % n)
    }

    /// Sends one request to instance `target` and records it; the reply
    /// when its status was one of those expected.
    async fn send_to(&self, target: usize, call: Call<'_>) -> Option<Reply> {
        let Call {
            op,
            method,
            path,
            token,
            body,
            expect,
        } = call;
        let t = &self.targets[target];
        let url = format!("{}{path}", t.base_url);
        let started_in = self.phase.load(Ordering::SeqCst);
        let start = Instant::now();
        let result = self.http.call(method.clone(), &url, token, body).await;
        let latency = start.elapsed();
        let mut outcome = match &result {
            Ok(r) if expect.contains(&r.status) => Outcome::Ok,
            Ok(r) if r.status == 503 => Outcome::Unavailable,
            Ok(r) if r.status >= 500 => Outcome::ServerError,
            Ok(_) => Outcome::ClientError,
            Err(_) => Outcome::Transport,
        };
        if outcome.failed() && !t.up.load(Ordering::SeqCst) {
            outcome = Outcome::Dropped;
        }
        let ended_in = self.phase.load(Ordering::SeqCst);
        let mut stats = lock(&self.stats);
        // A request in flight when a fault began or ended belongs to the
        // fault's phase (the one that is not strict), otherwise to the
        // phase it ended in.
        let phase = if stats.phases.get(started_in).is_some_and(|p| !p.strict) {
            started_in
        } else {
            ended_in
        };
        stats.record(phase, op, outcome, latency, || match &result {
            Ok(r) => {
                let mut body = r.body.to_string();
                body.truncate(200);
                format!(
                    "{op} {method} {path} on {}: {} {body}",
                    t.base_url, r.status
                )
            }
            Err(e) => format!("{op} {method} {path} on {}: {e}", t.base_url),
        });
        drop(stats);
        self.total_done.fetch_add(1, Ordering::Relaxed);
        if self.phase.load(Ordering::SeqCst) == phase {
            self.phase_done.fetch_add(1, Ordering::SeqCst);
        }
        result.ok().filter(|_| outcome == Outcome::Ok)
    }

    /// [`Self::send_to`] the next instance in rotation.
    async fn send(&self, call: Call<'_>) -> Option<Reply> {
        self.send_to(self.pick(), call).await
    }

    /// Logs `email` in (setup: retried for a while); the session token.
    async fn setup_login(&self, email: &str) -> Result<String, LoadError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = self.login_body(email);
            let url = format!("{}/api/v1/auth/login", self.targets[self.pick()].base_url);
            match self.http.call(Method::POST, &url, None, Some(&body)).await {
                Ok(r) if r.status == 200 => return Ok(self.keep_tokens(&r.body)),
                other if Instant::now() >= deadline => {
                    return Err(LoadError::Setup(format!(
                        "logging in {email}: {}",
                        match other {
                            Ok(r) => format!("HTTP {} {}", r.status, r.body),
                            Err(e) => e.to_string(),
                        }
                    )))
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }

    fn login_body(&self, email: &str) -> Value {
        json!({"tenant": self.config.tenant, "email": email, "password": self.config.password})
    }

    /// The session token of a login reply (remembering both tokens when asked).
    fn keep_tokens(&self, body: &Value) -> String {
        let token = body["token"].as_str().unwrap_or_default().to_string();
        if self.config.keep_secrets {
            let mut s = lock(&self.secrets);
            s.push(token.clone());
            if let Some(r) = body["refresh_token"].as_str() {
                s.push(r.to_string());
            }
        }
        token
    }
}

/// One request to make.
struct Call<'a> {
    op: Op,
    method: Method,
    path: &'a str,
    token: Option<&'a str>,
    body: Option<&'a Value>,
    expect: &'a [u16],
}

impl<'a> Call<'a> {
    fn new(
        op: Op,
        method: Method,
        path: &'a str,
        token: Option<&'a str>,
        expect: &'a [u16],
    ) -> Self {
        Self {
            op,
            method,
            path,
            token,
            body: None,
            expect,
        }
    }

    fn body(mut self, body: &'a Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// One worker: an account, its session, its threads and recent messages.
struct Worker {
    email: String,
    token: String,
    threads: Vec<String>,
    recent: Vec<String>,
    /// The oldest message of the last page read: old enough to be on every
    /// replica still serving (a newer one another worker just posted may
    /// not be yet, and a session that did not write it is not owed it).
    settled: Option<String>,
    rng: SmallRng,
    posted: u64,
    probed: bool,
}

impl Worker {
    async fn new(shared: &Shared, i: usize, email: String) -> Result<Worker, LoadError> {
        let token = shared.setup_login(&email).await?;
        let url = format!("{}/api/v1/threads", shared.targets[0].base_url);
        let threads = match shared
            .http
            .call(Method::GET, &url, Some(&token), None)
            .await
        {
            Ok(r) if r.status == 200 => r
                .body
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t["id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            other => {
                return Err(LoadError::Setup(format!(
                    "listing the threads of {email}: {other:?}"
                )))
            }
        };
        Ok(Worker {
            probed: email == shared.config.probe_user,
            email,
            token,
            threads,
            recent: Vec::new(),
            settled: None,
            rng: SmallRng::seed_from_u64(shared.config.seed.wrapping_add(i as u64)),
            posted: 0,
        })
    }

    async fn run(mut self, shared: Arc<Shared>) {
        let total = shared.config.mix.total();
        while !shared.stopping() {
            let op = shared.config.mix.pick(self.rng.random_range(0..total));
            let op = match op {
                Op::Page | Op::Read | Op::React | Op::Post | Op::Readers | Op::Reactions
                    if self.threads.is_empty() =>
                {
                    Op::Check
                }
                Op::Read | Op::React if self.recent.is_empty() => Op::Page,
                Op::Readers | Op::Reactions if self.settled.is_none() => Op::Page,
                other => other,
            };
            self.step(&shared, op).await;
        }
    }

    fn thread(&mut self) -> String {
        self.threads[self.rng.random_range(0..self.threads.len())].clone()
    }

    fn recent(&mut self) -> String {
        self.recent[self.rng.random_range(0..self.recent.len())].clone()
    }

    async fn step(&mut self, shared: &Shared, op: Op) {
        let token = self.token.clone();
        let t = Some(token.as_str());
        match op {
            Op::Login => {
                let body = shared.login_body(&self.email);
                let path = "/api/v1/auth/login";
                if let Some(r) = shared
                    .send(Call::new(op, Method::POST, path, None, &[200]).body(&body))
                    .await
                {
                    self.token = shared.keep_tokens(&r.body);
                    // The replaced session ends, as a client logging in again would.
                    shared
                        .send(Call::new(
                            Op::Logout,
                            Method::POST,
                            "/api/v1/auth/logout",
                            t,
                            &[204],
                        ))
                        .await;
                }
            }
            Op::Check => {
                let path = if self.probed {
                    shared.probe_query.clone()
                } else {
                    "/api/v1/permissions/check?module=messaging&page=threads&action=view".into()
                };
                let started = Instant::now();
                if let Some(r) = shared
                    .send(Call::new(op, Method::GET, &path, t, &[200]))
                    .await
                {
                    if self.probed {
                        shared
                            .model
                            .judge(started, r.body["allowed"].as_bool() == Some(true));
                    }
                }
            }
            Op::Page => {
                let thread = self.thread();
                let path = format!("/api/v1/threads/{thread}/messages?limit=50");
                if let Some(r) = shared
                    .send(Call::new(op, Method::GET, &path, t, &[200]))
                    .await
                {
                    let ids: Vec<String> = r.body["messages"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|m| m["id"].as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    if !ids.is_empty() {
                        self.settled = ids.last().cloned();
                        self.recent = ids;
                    }
                }
            }
            Op::Read => {
                if self.rng.random_bool(0.5) {
                    let thread = self.thread();
                    let path = format!("/api/v1/threads/{thread}/read");
                    shared
                        .send(Call::new(op, Method::POST, &path, t, &[200]))
                        .await;
                } else {
                    let message = self.recent();
                    let path = format!("/api/v1/messages/{message}/read");
                    if shared
                        .send(Call::new(op, Method::POST, &path, t, &[204]))
                        .await
                        .is_some()
                    {
                        lock(&shared.acked)
                            .reads
                            .insert((message, self.email.clone()));
                    }
                }
            }
            Op::React => {
                let message = self.recent();
                let emoji = ["👍", "🎉", "✅", "👀", "🙏", "ok"][self.rng.random_range(0..6)];
                let path = format!("/api/v1/messages/{message}/reactions");
                let body = json!({ "emoji": emoji });
                if shared
                    .send(Call::new(op, Method::POST, &path, t, &[200, 201]).body(&body))
                    .await
                    .is_some()
                {
                    lock(&shared.acked).reactions.insert((
                        message,
                        self.email.clone(),
                        emoji.to_string(),
                    ));
                }
            }
            Op::Post => {
                let thread = self.thread();
                self.posted += 1;
                let body =
                    json!({ "content": format!("load test: {} #{}", self.email, self.posted) });
                let path = format!("/api/v1/threads/{thread}/messages");
                if let Some(r) = shared
                    .send(Call::new(op, Method::POST, &path, t, &[201]).body(&body))
                    .await
                {
                    if let Some(id) = r.body["id"].as_str() {
                        lock(&shared.acked).posts.insert(id.to_string());
                        self.recent.push(id.to_string());
                        if shared.config.check_read_your_writes {
                            check_own_post(shared, t, &thread, id, &r.body).await;
                        }
                    }
                }
            }
            Op::Threads | Op::Unread | Op::Summary | Op::Approvals => {
                let (path, expect): (&str, &[u16]) = match op {
                    Op::Threads => ("/api/v1/threads", &[200]),
                    Op::Unread => ("/api/v1/threads/unread", &[200]),
                    // Accounts without the permission get 403: both are
                    // the right answer, and both are counted.
                    Op::Summary => ("/api/v1/usage-events/summary", &[200, 403]),
                    _ => ("/api/v1/approvals/pending", &[200, 403]),
                };
                shared
                    .send(Call::new(op, Method::GET, path, t, expect))
                    .await;
            }
            Op::Readers | Op::Reactions => {
                let message = self.settled.clone().unwrap_or_default();
                let what = if op == Op::Readers {
                    "reads"
                } else {
                    "reactions"
                };
                let path = format!("/api/v1/messages/{message}/{what}");
                shared
                    .send(Call::new(op, Method::GET, &path, t, &[200]))
                    .await;
            }
            Op::Logout | Op::RoleEdit => {}
        }
    }
}

/// Reads the thread's newest page as the poster, on the next instance in
/// rotation, and counts whether the post `id` is in it. A page of 200
/// entirely newer than the post cannot say (others posted that much in
/// between): not counted.
async fn check_own_post(
    shared: &Shared,
    token: Option<&str>,
    thread: &str,
    id: &str,
    posted: &Value,
) {
    let path = format!("/api/v1/threads/{thread}/messages?limit=200");
    let Some(r) = shared
        .send(Call::new(Op::Page, Method::GET, &path, token, &[200]))
        .await
    else {
        return;
    };
    let page = r.body["messages"].as_array().cloned().unwrap_or_default();
    let found = page.iter().any(|m| m["id"] == id);
    let posted_at = posted["created_at"].as_str().unwrap_or_default();
    let all_newer = page.len() == 200
        && page
            .last()
            .and_then(|m| m["created_at"].as_str())
            .is_some_and(|oldest| oldest > posted_at);
    let c = &shared.ryw;
    if found {
        c.checked.fetch_add(1, Ordering::Relaxed);
    } else if all_newer {
        c.inconclusive.fetch_add(1, Ordering::Relaxed);
    } else {
        c.checked.fetch_add(1, Ordering::Relaxed);
        c.missed.fetch_add(1, Ordering::Relaxed);
        let mut samples = lock(&c.samples);
        if samples.len() < 5 {
            samples.push(format!(
                "post {id} in thread {thread} missing from its poster's next page ({} messages)",
                page.len()
            ));
        }
    }
}

/// Revokes and grants the probed permission throughout, and asks every
/// instance right after each acknowledged change.
struct Prober {
    admin: String,
    staff: String,
    path: String,
    grant: Value,
    revoke: Value,
    every: Duration,
}

impl Prober {
    async fn new(shared: &Shared, every: Duration) -> Result<Prober, LoadError> {
        let c = &shared.config;
        let admin = shared.setup_login(&c.admin).await?;
        let staff = shared.setup_login(&c.probe_user).await?;
        let url = format!("{}/api/v1/admin/roles", shared.targets[0].base_url);
        let roles = match shared
            .http
            .call(Method::GET, &url, Some(&admin), None)
            .await
        {
            Ok(r) if r.status == 200 => r.body,
            other => return Err(LoadError::Setup(format!("listing roles: {other:?}"))),
        };
        let role = roles
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == c.probe_role.as_str()))
            .ok_or_else(|| LoadError::Setup(format!("no role named {:?}", c.probe_role)))?;
        let (module, page, action) = &c.probe_permission;
        let mut grants: Vec<Value> = role["permissions"].as_array().cloned().unwrap_or_default();
        let held = grants
            .iter_mut()
            .find(|g| g["module"] == module.as_str() && g["page"] == page.as_str());
        match held {
            Some(g) => {
                let actions = g["actions"].as_array_mut().expect("actions are a list");
                if !actions.iter().any(|a| a == action.as_str()) {
                    actions.push(json!(action));
                }
            }
            None => grants.push(json!({"module": module, "page": page, "actions": [action]})),
        }
        let revoked: Vec<Value> = grants
            .iter()
            .filter_map(|g| {
                let mut g = g.clone();
                if g["module"] == module.as_str() && g["page"] == page.as_str() {
                    let actions: Vec<Value> = g["actions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|a| *a != action.as_str())
                        .cloned()
                        .collect();
                    if actions.is_empty() {
                        return None;
                    }
                    g["actions"] = Value::Array(actions);
                }
                Some(g)
            })
            .collect();
        Ok(Prober {
            admin,
            staff,
            path: format!("/api/v1/admin/roles/{}/permissions", role["id"]),
            grant: json!({ "permissions": grants }),
            revoke: json!({ "permissions": revoked }),
            every,
        })
    }

    async fn change(&self, shared: &Shared, revoke: bool) {
        let body = if revoke { &self.revoke } else { &self.grant };
        shared.model.changing();
        let done = shared
            .send(
                Call::new(
                    Op::RoleEdit,
                    Method::PUT,
                    &self.path,
                    Some(&self.admin),
                    &[200],
                )
                .body(body),
            )
            .await;
        match (done.is_some(), revoke) {
            (true, true) => shared.model.revoked(),
            (true, false) => shared.model.granted(),
            (false, _) => shared.model.failed(),
        }
        // Every instance at once, right after the acknowledgement.
        for i in 0..shared.targets.len() {
            if !shared.targets[i].up.load(Ordering::Relaxed) {
                continue;
            }
            let started = Instant::now();
            let q = shared.probe_query.clone();
            if let Some(r) = shared
                .send_to(
                    i,
                    Call::new(Op::Check, Method::GET, &q, Some(&self.staff), &[200]),
                )
                .await
            {
                shared
                    .model
                    .judge(started, r.body["allowed"].as_bool() == Some(true));
            }
        }
    }

    async fn run(self, shared: Arc<Shared>) {
        // Start from a known state: granted.
        self.change(&shared, false).await;
        while !shared.stopping() {
            for revoke in [true, false] {
                self.change(&shared, revoke).await;
                let deadline = Instant::now() + self.every;
                while Instant::now() < deadline && !shared.stopping() {
                    tokio::time::sleep(Duration::from_millis(20).min(self.every)).await;
                }
            }
        }
        // Leave the permission as it was found: granted.
        self.change(&shared, false).await;
    }
}

/// Samples each instance's memory every second (the maximum is reported).
async fn sample_memory(shared: Arc<Shared>) {
    while !shared.stopping() {
        for t in &shared.targets {
            if let Some(kib) = t.pid.and_then(crate::rss_kib) {
                t.rss_max.fetch_max(kib, Ordering::Relaxed);
            }
        }
        for _ in 0..50 {
            if shared.stopping() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
