//! The interleaving harness: a lifecycle operation paused at one of its
//! named steps while other sessions write, then an exact check that nothing
//! committed was lost.
//!
//! How a pause works: the test database's `bisman_lifecycle_step(name)` is
//! replaced by one that waits on an advisory lock when `name` is in
//! `harness_pause`; the harness holds that lock, so the operation stops
//! exactly there (inside its transaction, with whatever locks it holds).
//!
//! What happens at the step (all four, each on its own connection, each a
//! transaction that also records its effect in `harness_model` — the rows
//! committed, as the application believes them):
//! - `insert`: a new row of the month the operation works on;
//! - `update`: one of its rows changed;
//! - `delete`: one of its rows deleted;
//! - `commit`: a transaction opened before the operation started (an insert,
//!   an update and a delete in that month) commits at the step — or, when
//!   the operation waits for it before reaching the step, while it waits.
//!
//! A write may block on the operation's locks: the harness waits until each
//! write is done or waiting, checks what is committed at that moment, then
//! lets the operation go on. At the end: the rows committed EXCEPT (table ∪
//! the archives of dropped months) and the reverse must both be empty, and
//! no update or delete of a row that was in the table may have silently
//! found nothing.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgConnection, PgPool};

/// An operation under test: its summary, or its error as text.
pub type Op = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;

/// How long anything may take before the harness calls it stuck.
const PATIENCE: Duration = Duration::from_secs(90);
/// Advisory lock class of the steps.
const STEP_CLASS: i32 = 4242;

/// The table a scenario watches, and how the application writes to it.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The table the application writes (the partitioned parent, or the base
    /// name when that is what the application uses).
    pub table: String,
    /// Its name in the archive ledger.
    pub base: String,
    /// The key column.
    pub key: String,
    /// The partition column.
    pub column: String,
    /// A new row at `$1` (a timestamp as text): `(columns) VALUES (…)`.
    pub insert: String,
    /// The SET clause of an update.
    pub set: String,
}

impl Subject {
    /// `client_usage_events` through the table the application writes.
    pub fn usage_events(table: &str) -> Self {
        Self {
            table: table.into(),
            base: "client_usage_events".into(),
            key: "id".into(),
            column: "occurred_at".into(),
            insert: format!(
                "(tenant_id, event_type, metadata, occurred_at) VALUES ('{}', 'written at the step', '{{}}', $1::timestamptz)",
                super::TENANT
            ),
            set: "metadata = metadata || '{\"changed\": true}'".into(),
        }
    }

    /// `thread_messages` through the table the application writes.
    pub fn messages(table: &str) -> Self {
        Self {
            table: table.into(),
            base: "thread_messages".into(),
            key: "id".into(),
            column: "createdAt".into(),
            insert: format!(
                "(id, tenant_id, \"threadId\", \"senderId\", content, \"createdAt\")
                 VALUES ('w' || md5(random()::text), '{}', 'th1', 1, 'written at the step', $1::timestamp)",
                super::TENANT
            ),
            set: "content = content || ' (edited)'".into(),
        }
    }
}

/// Where an operation stood when the writes happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Paused at the step.
    Step,
    /// Waiting for the open transaction's locks before the step (the commit
    /// happened then; the step was reached afterwards).
    WaitedThenStep,
    /// Finished without reaching the step (the writes happened after it).
    Never,
}

/// One write made at the step.
#[derive(Debug, Clone)]
pub struct WriteOutcome {
    /// `insert`, `update`, `delete`, `commit`.
    pub kind: &'static str,
    /// Committed, or the error.
    pub result: Result<(), String>,
    /// Whether it had to wait for the operation's locks.
    pub waited: bool,
    /// Updates and deletes of a row that was in the table that found nothing.
    pub missed: Vec<String>,
}

/// What one interleaving did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The step.
    pub step: String,
    /// Where the operation was.
    pub reached: Reached,
    /// The operation's outcome.
    pub op: Result<String, String>,
    /// The writes.
    pub writes: Vec<WriteOutcome>,
    /// Rows committed that were in neither the table nor an archive, at the
    /// step (`None`: the check had to wait for the operation's locks, as any
    /// reader would) and at the end.
    pub lost_at_step: Option<i64>,
    /// Rows in the table or an archive that nobody committed (or stale
    /// versions), at the step.
    pub phantom_at_step: Option<i64>,
    /// At the end.
    pub lost: i64,
    /// At the end.
    pub phantom: i64,
}

impl Report {
    /// Panics with everything when the invariant does not hold.
    pub fn assert_clean(&self) {
        let missed: Vec<&String> = self.writes.iter().flat_map(|w| &w.missed).collect();
        let ok = self.lost == 0
            && self.phantom == 0
            && self.lost_at_step.unwrap_or(0) == 0
            && self.phantom_at_step.unwrap_or(0) == 0
            && missed.is_empty();
        assert!(ok, "invariant broken at {}: {self:#?}", self.step);
    }

    /// One line for the record.
    pub fn line(&self) -> String {
        let writes: Vec<String> = self
            .writes
            .iter()
            .map(|w| {
                format!(
                    "{}{}{}",
                    w.kind,
                    if w.waited { " (waited)" } else { "" },
                    match &w.result {
                        Ok(()) => String::new(),
                        Err(e) => format!(" FAILED: {e}"),
                    }
                )
            })
            .collect();
        format!(
            "{:<18} {:?}; op: {}; writes: {}; lost {} phantom {} (at the step: {:?}/{:?})",
            self.step,
            self.reached,
            match &self.op {
                Ok(s) => format!("ok ({s})"),
                Err(e) => format!("FAILED ({e})"),
            },
            writes.join(", "),
            self.lost,
            self.phantom,
            self.lost_at_step,
            self.phantom_at_step
        )
    }
}

/// Pauses for scenarios that write on their own: the step function
/// installed, a step held, the operation's arrival awaited, released.
pub struct Pauses {
    ctl: PgConnection,
}

impl Pauses {
    /// Installs the pausing step function.
    pub async fn install(url: &str) -> Pauses {
        let mut ctl = connect(url, "harness-ctl").await;
        install_step_function(&mut ctl).await;
        Pauses { ctl }
    }

    /// Holds `step`: the next operation to reach it waits there.
    pub async fn hold(&mut self, step: &str) {
        hold(&mut self.ctl, step).await;
    }

    /// Waits until an operation waits at `step` (true) or `task` finished
    /// without reaching it (false).
    pub async fn arrival<T>(&mut self, step: &str, task: &tokio::task::JoinHandle<T>) -> bool {
        let deadline = Instant::now() + PATIENCE;
        loop {
            assert!(Instant::now() < deadline, "{step} not reached");
            if op_at_step(&mut self.ctl, step).await {
                return true;
            }
            if task.is_finished() {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Lets the operation waiting at `step` go on.
    pub async fn release(&mut self, step: &str) {
        release(&mut self.ctl, step).await;
    }

    /// Whether backend `pid` waits for a lock.
    pub async fn is_waiting(&mut self, pid: i32) -> bool {
        is_waiting(&mut self.ctl, pid).await
    }

    /// Waits until some session of the operation (application name
    /// `bisman`) waits for a lock that is not a step's.
    pub async fn until_op_blocked(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while !op_blocked(&mut self.ctl).await {
            assert!(
                Instant::now() < deadline,
                "the operation never waited for a lock"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until backend `pid` waits for a lock, or `task` is done.
    pub async fn until_waiting_or_done<T>(&mut self, pid: i32, task: &tokio::task::JoinHandle<T>) {
        let deadline = Instant::now() + PATIENCE;
        while !task.is_finished() && !is_waiting(&mut self.ctl, pid).await {
            assert!(Instant::now() < deadline, "{pid} neither done nor waiting");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

async fn install_step_function(ctl: &mut PgConnection) {
    sqlx::raw_sql(&format!(
        "CREATE TABLE IF NOT EXISTS harness_pause (step TEXT PRIMARY KEY);
         CREATE OR REPLACE FUNCTION bisman_lifecycle_step(p_step TEXT)
         RETURNS VOID LANGUAGE plpgsql SET lock_timeout = 0 AS $$
         BEGIN
             IF EXISTS (SELECT 1 FROM harness_pause WHERE step = p_step) THEN
                 PERFORM pg_advisory_lock({STEP_CLASS}, hashtext(p_step) & 2147483647);
                 PERFORM pg_advisory_unlock({STEP_CLASS}, hashtext(p_step) & 2147483647);
             END IF;
         END $$;"
    ))
    .execute(ctl)
    .await
    .unwrap();
}

async fn hold(ctl: &mut PgConnection, step: &str) {
    sqlx::query("INSERT INTO harness_pause VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(step)
        .execute(&mut *ctl)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock($1, hashtext($2) & 2147483647)")
        .bind(STEP_CLASS)
        .bind(step)
        .execute(&mut *ctl)
        .await
        .unwrap();
}

async fn release(ctl: &mut PgConnection, step: &str) {
    sqlx::query("DELETE FROM harness_pause WHERE step = $1")
        .bind(step)
        .execute(&mut *ctl)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_unlock($1, hashtext($2) & 2147483647)")
        .bind(STEP_CLASS)
        .bind(step)
        .execute(&mut *ctl)
        .await
        .unwrap();
}

async fn op_at_step(ctl: &mut PgConnection, step: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                        WHERE a.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted
                          AND l.classid = $1::int::oid AND l.objid = (hashtext($2) & 2147483647)::oid)",
    )
    .bind(STEP_CLASS)
    .bind(step)
    .fetch_one(ctl)
    .await
    .unwrap()
}

async fn op_blocked(ctl: &mut PgConnection) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                        WHERE a.datname = current_database() AND a.application_name NOT LIKE 'harness%'
                          AND NOT l.granted AND NOT (l.locktype = 'advisory' AND l.classid = $1::int::oid))",
    )
    .bind(STEP_CLASS)
    .fetch_one(ctl)
    .await
    .unwrap()
}

async fn is_waiting(ctl: &mut PgConnection, pid: i32) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND NOT granted)")
        .bind(pid)
        .fetch_one(ctl)
        .await
        .unwrap()
}

/// The harness for one database.
pub struct Harness {
    url: String,
    subject: Subject,
    archive_dir: Option<PathBuf>,
    ctl: PgConnection,
}

async fn connect(url: &str, app: &str) -> PgConnection {
    let opts: PgConnectOptions = url.parse().unwrap();
    opts.application_name(app)
        .options([("timezone", "UTC")])
        .connect()
        .await
        .unwrap()
}

/// A pool whose sessions the harness does not count as the operation's.
pub async fn side_pool(url: &str) -> PgPool {
    let opts: PgConnectOptions = url.parse().unwrap();
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(
            opts.application_name("harness-side")
                .options([("timezone", "UTC")]),
        )
        .await
        .unwrap()
}

impl Harness {
    /// Installs the pausing step function and the model (the rows committed
    /// now: the table's and those in the archives of dropped months).
    pub async fn install(url: &str, subject: Subject, archive_dir: Option<&Path>) -> Harness {
        let mut ctl = connect(url, "harness-ctl").await;
        install_step_function(&mut ctl).await;
        sqlx::raw_sql(&format!(
            "DROP TABLE IF EXISTS harness_model;
             CREATE TABLE harness_model AS SELECT * FROM {t} WHERE false;",
            t = subject.table
        ))
        .execute(&mut ctl)
        .await
        .unwrap();
        let mut h = Harness {
            url: url.to_string(),
            subject,
            archive_dir: archive_dir.map(Path::to_path_buf),
            ctl,
        };
        h.load_archives().await;
        sqlx::raw_sql(&format!(
            "INSERT INTO harness_model SELECT * FROM {t} UNION ALL SELECT * FROM harness_archived",
            t = h.subject.table
        ))
        .execute(&mut h.ctl)
        .await
        .unwrap();
        h
    }

    /// The table the application writes, for scenarios where it changes
    /// name (a swap).
    pub fn set_table(&mut self, table: &str) {
        self.subject.table = table.into();
    }

    /// Rows of the archives of months dropped (and not restored since) into
    /// `harness_archived`.
    async fn load_archives(&mut self) {
        sqlx::raw_sql(
            "DROP TABLE IF EXISTS harness_archived;
             CREATE TEMP TABLE harness_archived AS SELECT * FROM harness_model WHERE false;",
        )
        .execute(&mut self.ctl)
        .await
        .unwrap();
        let Some(dir) = self.archive_dir.clone() else {
            return;
        };
        let files: Vec<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT manifest->>'data_file', manifest->'columns' FROM bisman_partition_archives
             WHERE base_table = $1 AND dropped_at IS NOT NULL
               AND dropped_at > coalesce(restored_at, '-infinity')",
        )
        .bind(&self.subject.base)
        .fetch_all(&mut self.ctl)
        .await
        .unwrap();
        for (file, columns) in files {
            let cols: Vec<String> = columns
                .as_array()
                .unwrap()
                .iter()
                .map(|c| format!("\"{}\"", c["name"].as_str().unwrap()))
                .collect();
            let mut raw = Vec::new();
            flate2::read::GzDecoder::new(std::fs::File::open(dir.join(&file)).unwrap())
                .read_to_end(&mut raw)
                .unwrap();
            let mut copy = self
                .ctl
                .copy_in_raw(&format!(
                    "COPY harness_archived ({}) FROM STDIN (FORMAT csv, HEADER MATCH)",
                    cols.join(", ")
                ))
                .await
                .unwrap();
            copy.send(raw).await.unwrap();
            copy.finish().await.unwrap();
        }
    }

    /// The check, now: (rows committed but nowhere, rows somewhere but not
    /// committed).
    pub async fn check_now(&mut self) -> (i64, i64) {
        self.check(true).await.unwrap()
    }

    /// Rows committed but nowhere, and rows somewhere but not committed.
    /// `None` when a lock held by the operation made the check wait.
    async fn check(&mut self, patient: bool) -> Option<(i64, i64)> {
        self.load_archives().await;
        let timeout = if patient { "0" } else { "200ms" };
        sqlx::raw_sql(&format!("SET lock_timeout = '{timeout}'"))
            .execute(&mut self.ctl)
            .await
            .unwrap();
        let t = &self.subject.table;
        let result: Result<(i64, i64), sqlx::Error> = sqlx::query_as(&format!(
            "WITH actual AS (SELECT * FROM {t} UNION ALL SELECT * FROM harness_archived)
             SELECT (SELECT count(*) FROM (SELECT * FROM harness_model EXCEPT SELECT * FROM actual) a),
                    (SELECT count(*) FROM (SELECT * FROM actual EXCEPT SELECT * FROM harness_model) b)"
        ))
        .fetch_one(&mut self.ctl)
        .await;
        sqlx::raw_sql("SET lock_timeout = 0")
            .execute(&mut self.ctl)
            .await
            .unwrap();
        match result {
            Ok(r) => Some(r),
            Err(e) if !patient && is_lock_timeout(&e) => None,
            Err(e) => panic!("check: {e}"),
        }
    }

    /// Keys of rows of the month starting at `month` (a timestamp as text)
    /// in the model, for the writes to aim at.
    async fn targets(&mut self, month: &str) -> Vec<String> {
        let s = &self.subject;
        let keys: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT {k}::text FROM harness_model
             WHERE \"{c}\" >= $1::timestamp AND \"{c}\" < $1::timestamp + interval '1 month'
             ORDER BY {k} LIMIT 4",
            k = s.key,
            c = s.column
        ))
        .bind(month)
        .fetch_all(&mut self.ctl)
        .await
        .unwrap();
        assert_eq!(keys.len(), 4, "the scenario needs 4 rows in {month}");
        keys
    }

    /// Runs `op`, pausing it at `step` for the writes to `month` (a month
    /// start, as text), and checks the invariant.
    pub async fn run(&mut self, step: &str, month: &str, op: Op) -> Report {
        let targets = self.targets(month).await;
        let at = format!("'{month}'::timestamp + interval '10 days'");
        let at: String = sqlx::query_scalar(&format!("SELECT ({at})::text"))
            .fetch_one(&mut self.ctl)
            .await
            .unwrap();
        // The transaction that commits at the step: opened before the operation.
        let mut open = Writer::connect(&self.url, &self.subject).await;
        sqlx::raw_sql("BEGIN")
            .execute(&mut open.conn)
            .await
            .unwrap();
        let mut open_missed = Vec::new();
        open.insert(&at).await.unwrap();
        if let Some(m) = open.update(&targets[2]).await.unwrap() {
            open_missed.push(m);
        }
        if let Some(m) = open.delete(&targets[3]).await.unwrap() {
            open_missed.push(m);
        }

        hold(&mut self.ctl, step).await;
        let task = tokio::spawn(op);
        let deadline = Instant::now() + PATIENCE;
        let mut open_done: Option<(Result<(), String>, bool)> = None;
        let reached = loop {
            assert!(
                Instant::now() < deadline,
                "{step}: the operation neither reached the step nor finished"
            );
            let at_step = op_at_step(&mut self.ctl, step).await;
            let blocked = !at_step && op_blocked(&mut self.ctl).await;
            if at_step {
                break if open_done.is_some() {
                    Reached::WaitedThenStep
                } else {
                    Reached::Step
                };
            }
            if task.is_finished() {
                break Reached::Never;
            }
            if blocked && open_done.is_none() {
                // It waits for the open transaction: that one commits now.
                open_done = Some((commit(&mut open.conn).await, false));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };

        // The writes at the step.
        let mut spawned = Vec::new();
        for kind in ["insert", "update", "delete"] {
            let mut w = Writer::connect(&self.url, &self.subject).await;
            let at = at.clone();
            let key = match kind {
                "update" => targets[0].clone(),
                "delete" => targets[1].clone(),
                _ => String::new(),
            };
            let pid = w.pid().await;
            let handle = tokio::spawn(async move {
                let r = match kind {
                    "insert" => w.insert(&at).await.map(|_| None),
                    "update" => w.update(&key).await,
                    _ => w.delete(&key).await,
                };
                r
            });
            spawned.push((kind, pid, handle));
        }
        let open_pid = open.pid().await;
        let open_task = if open_done.is_none() {
            Some(tokio::spawn(async move {
                let r = commit(&mut open.conn).await;
                (r, open)
            }))
        } else {
            None
        };
        // Each write is done or waiting for a lock before the operation goes on.
        let mut waited = std::collections::HashMap::new();
        loop {
            assert!(Instant::now() < deadline, "{step}: writes stuck");
            let mut settled = true;
            for (kind, pid, handle) in &spawned {
                if handle.is_finished() {
                    continue;
                }
                if is_waiting(&mut self.ctl, *pid).await {
                    waited.insert(*kind, true);
                } else {
                    settled = false;
                }
            }
            if let Some(t) = &open_task {
                if !t.is_finished() {
                    if is_waiting(&mut self.ctl, open_pid).await {
                        waited.insert("commit", true);
                    } else {
                        settled = false;
                    }
                }
            }
            if settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let at_step = self.check(false).await;

        release(&mut self.ctl, step).await;
        let op = tokio::time::timeout(PATIENCE, task)
            .await
            .unwrap_or_else(|_| panic!("{step}: the operation did not finish"))
            .unwrap();
        let mut writes = Vec::new();
        for (kind, _, handle) in spawned {
            let r = tokio::time::timeout(PATIENCE, handle)
                .await
                .unwrap_or_else(|_| panic!("{step}: the {kind} did not finish"))
                .unwrap();
            writes.push(WriteOutcome {
                kind,
                waited: waited.contains_key(kind),
                missed: match &r {
                    Ok(Some(m)) => vec![m.clone()],
                    _ => Vec::new(),
                },
                result: r.map(|_| ()),
            });
        }
        let commit_result = match (open_done, open_task) {
            (Some((r, _)), _) => (r, true),
            (None, Some(t)) => (t.await.unwrap().0, waited.contains_key("commit")),
            (None, None) => unreachable!(),
        };
        writes.push(WriteOutcome {
            kind: "commit",
            result: commit_result.0,
            waited: commit_result.1,
            missed: open_missed,
        });
        // A missed update or delete is only one if the row is still in the
        // table, not archived: then the write found nothing although the row
        // was there.
        for w in &mut writes {
            let mut still = Vec::new();
            for key in std::mem::take(&mut w.missed) {
                if self.in_table(&key).await {
                    still.push(format!("{} of {key} found no row", w.kind));
                }
            }
            w.missed = still;
        }
        let (lost, phantom) = self.check(true).await.unwrap();
        Report {
            step: step.into(),
            reached,
            op,
            writes,
            lost_at_step: at_step.map(|c| c.0),
            phantom_at_step: at_step.map(|c| c.1),
            lost,
            phantom,
        }
    }

    async fn in_table(&mut self, key: &str) -> bool {
        let s = &self.subject;
        sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {}::text = $1)",
            s.table, s.key
        ))
        .bind(key)
        .fetch_one(&mut self.ctl)
        .await
        .unwrap()
    }
}

fn is_lock_timeout(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "55P03")
}

async fn commit(conn: &mut PgConnection) -> Result<(), String> {
    sqlx::query("COMMIT")
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A session that writes like the application, recording each effect in
/// `harness_model` in the same transaction.
struct Writer {
    conn: PgConnection,
    subject: Subject,
}

impl Writer {
    async fn connect(url: &str, subject: &Subject) -> Writer {
        Writer {
            conn: connect(url, "harness-writer").await,
            subject: subject.clone(),
        }
    }

    async fn pid(&mut self) -> i32 {
        sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut self.conn)
            .await
            .unwrap()
    }

    async fn insert(&mut self, at: &str) -> Result<(), String> {
        let s = &self.subject;
        sqlx::query(&format!(
            "WITH r AS (INSERT INTO {t} {ins} RETURNING *) INSERT INTO harness_model SELECT * FROM r",
            t = s.table,
            ins = s.insert
        ))
        .bind(at)
        .execute(&mut self.conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Updates `key`; `Some(key)` when the row was in the table before and
    /// the update found nothing.
    async fn update(&mut self, key: &str) -> Result<Option<String>, String> {
        let s = self.subject.clone();
        let before = self.exists(key).await?;
        let n: i64 = sqlx::query_scalar(&format!(
            "WITH r AS (UPDATE {t} SET {set} WHERE {k}::text = $1 RETURNING *),
                  d AS (DELETE FROM harness_model m WHERE m.{k} IN (SELECT {k} FROM r)),
                  i AS (INSERT INTO harness_model SELECT * FROM r RETURNING 1)
             SELECT count(*) FROM i",
            t = s.table,
            set = s.set,
            k = s.key
        ))
        .bind(key)
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| e.to_string())?;
        Ok((before && n == 0).then(|| key.to_string()))
    }

    async fn delete(&mut self, key: &str) -> Result<Option<String>, String> {
        let s = self.subject.clone();
        let before = self.exists(key).await?;
        let n: i64 = sqlx::query_scalar(&format!(
            "WITH r AS (DELETE FROM {t} WHERE {k}::text = $1 RETURNING {k}),
                  d AS (DELETE FROM harness_model m WHERE m.{k} IN (SELECT {k} FROM r) RETURNING 1)
             SELECT count(*) FROM r",
            t = s.table,
            k = s.key
        ))
        .bind(key)
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| e.to_string())?;
        Ok((before && n == 0).then(|| key.to_string()))
    }

    async fn exists(&mut self, key: &str) -> Result<bool, String> {
        let s = &self.subject;
        sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE {}::text = $1)",
            s.table, s.key
        ))
        .bind(key)
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| e.to_string())
    }
}
