//! A private primary with hot standbys, for the read-replica tests: real
//! PostgreSQL processes made from the machine's binaries the way the
//! embedded server is (`initdb`, then `pg_basebackup -R` per standby, each
//! on a free loopback port, all under one temporary folder).
//!
//! The servers outlive no test: dropping the value kills them
//! (`SIGQUIT`, an immediate shutdown) and removes the folder, and a run
//! that was killed before it could do so is cleaned up by the next one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bisman_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use bisman_db::replicas::{primary_flush_lsn, Lsn};
use bisman_db::Migrator;
use sqlx::{Connection, PgConnection, PgPool};

/// Prefix of the temporary folders (one per cluster).
const FOLDER_PREFIX: &str = "bisman-replicated-";

/// The database the cluster's tests use (migrated, replicated).
pub const DATABASE: &str = "bisman";

/// A private primary and its standbys.
pub struct ReplicatedPostgres {
    root: PathBuf,
    primary: EmbeddedPostgres,
    standbys: Vec<EmbeddedPostgres>,
}

impl ReplicatedPostgres {
    /// A primary with database [`DATABASE`] migrated (every migration of
    /// this build) and `n` standbys that have replayed it.
    pub async fn start(n: usize) -> ReplicatedPostgres {
        remove_abandoned();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root =
            std::env::temp_dir().join(format!("{FOLDER_PREFIX}{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).expect("create the cluster folder");
        let primary = EmbeddedPostgres::start(&EmbeddedOptions {
            data_dir: root.join("primary"),
            port: None,
        })
        .await
        .expect("start a private primary");
        let mut cluster = ReplicatedPostgres {
            root,
            primary,
            standbys: Vec::new(),
        };
        cluster
            .primary
            .ensure_database(DATABASE)
            .await
            .expect("create the database");
        let pool = cluster.primary_pool(2).await;
        Migrator::embedded()
            .run(&pool, None, &|_| {})
            .await
            .expect("migrate the primary");
        pool.close().await;
        for _ in 0..n {
            cluster.add_standby().await;
        }
        cluster
    }

    /// URL of [`DATABASE`] on the primary.
    pub fn primary_url(&self) -> String {
        self.primary.url(DATABASE)
    }

    /// A pool on the primary.
    pub async fn primary_pool(&self, max: u32) -> PgPool {
        bisman_db::connect(&self.primary_url(), max)
            .await
            .expect("connect to the primary")
    }

    /// Number of standbys made so far.
    pub fn standbys(&self) -> usize {
        self.standbys.len()
    }

    /// URL of [`DATABASE`] on standby `i`.
    pub fn standby_url(&self, i: usize) -> String {
        self.standbys[i].url(DATABASE)
    }

    /// The URLs of every standby.
    pub fn standby_urls(&self) -> Vec<String> {
        (0..self.standbys.len())
            .map(|i| self.standby_url(i))
            .collect()
    }

    /// Makes one more standby (caught up with the primary); its index.
    pub async fn add_standby(&mut self) -> usize {
        let i = self.standbys.len();
        let standby = EmbeddedPostgres::start_standby(
            &self.primary.url("postgres"),
            &EmbeddedOptions {
                data_dir: self.root.join(format!("standby-{i}")),
                port: None,
            },
        )
        .await
        .unwrap_or_else(|e| panic!("start standby {i}: {e}"));
        self.standbys.push(standby);
        self.wait_replayed(i).await;
        i
    }

    /// Runs `sql` on standby `i` (as the superuser).
    pub async fn on_standby(&self, i: usize, sql: &str) {
        let mut c = PgConnection::connect(&self.standby_url(i))
            .await
            .unwrap_or_else(|e| panic!("connect to standby {i}: {e}"));
        sqlx::raw_sql(sql)
            .execute(&mut c)
            .await
            .unwrap_or_else(|e| panic!("{sql} on standby {i}: {e}"));
        let _ = c.close().await;
    }

    /// Pauses WAL replay on standby `i` (`pg_wal_replay_pause()`): it keeps
    /// answering, and falls behind as the primary writes.
    pub async fn pause_replay(&self, i: usize) {
        self.on_standby(i, "SELECT pg_wal_replay_pause()").await;
    }

    /// Resumes WAL replay on standby `i`.
    pub async fn resume_replay(&self, i: usize) {
        self.on_standby(i, "SELECT pg_wal_replay_resume()").await;
    }

    /// The primary's flushed WAL position now.
    pub async fn primary_lsn(&self) -> Lsn {
        let pool = self.primary_pool(1).await;
        let lsn = primary_flush_lsn(&pool)
            .await
            .expect("primary WAL position");
        pool.close().await;
        lsn
    }

    /// How far standby `i` has replayed.
    pub async fn replayed(&self, i: usize) -> Option<Lsn> {
        let mut c = PgConnection::connect(&self.standby_url(i)).await.ok()?;
        let text: Option<String> = sqlx::query_scalar("SELECT pg_last_wal_replay_lsn()::text")
            .fetch_one(&mut c)
            .await
            .ok()?;
        let _ = c.close().await;
        text.and_then(|t| t.parse().ok())
    }

    /// Waits until standby `i` has replayed everything the primary had
    /// flushed when this was called (panics after two minutes).
    pub async fn wait_replayed(&self, i: usize) {
        let target = self.primary_lsn().await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if self.replayed(i).await.is_some_and(|r| r >= target) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "standby {i} did not replay up to {target}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops standby `i` (`pg_ctl stop -m fast`: its sessions are ended).
    pub async fn stop_standby(&self, i: usize) {
        self.standbys[i]
            .stop_keeping()
            .await
            .unwrap_or_else(|e| panic!("stop standby {i}: {e}"));
    }

    /// Starts standby `i` again on its port, where it left off.
    pub async fn restart_standby(&self, i: usize) {
        self.standbys[i]
            .start_again()
            .await
            .unwrap_or_else(|e| panic!("start standby {i} again: {e}"));
    }

    /// Promotes standby `i`: it stops following the primary.
    pub async fn promote(&self, i: usize) {
        self.standbys[i]
            .promote()
            .await
            .unwrap_or_else(|e| panic!("promote standby {i}: {e}"));
    }

    fn data_dirs(&self) -> Vec<PathBuf> {
        std::iter::once(self.primary.pgdata().to_path_buf())
            .chain(self.standbys.iter().map(|s| s.pgdata().to_path_buf()))
            .collect()
    }
}

impl Drop for ReplicatedPostgres {
    fn drop(&mut self) {
        // Standbys first, so that none is left retrying a dead primary.
        let mut dirs = self.data_dirs();
        dirs.rotate_left(1);
        kill_servers(&dirs);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The postmaster's process id of a data folder, if it holds one.
fn postmaster_pid(pgdata: &Path) -> Option<i32> {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Whether `pid` is a PostgreSQL server (a stale pid file's number may
/// belong to another process by now).
fn is_postgres(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("postgres"))
        .unwrap_or(false)
}

/// Immediate shutdown of every server in `dirs`, waiting (a little) for each.
fn kill_servers(dirs: &[PathBuf]) {
    let pids: Vec<i32> = dirs
        .iter()
        .filter_map(|d| postmaster_pid(d))
        .filter(|p| is_postgres(*p))
        .collect();
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGQUIT,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Folders of clusters whose test process is gone (killed before it could
/// clean up): their servers are stopped and the folders removed.
fn remove_abandoned() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(FOLDER_PREFIX) else {
            continue;
        };
        let owner: Option<i32> = rest.split('-').next().and_then(|p| p.parse().ok());
        if owner.is_none_or(alive) {
            continue;
        }
        let root = entry.path();
        let dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("postgres"))
            .collect();
        kill_servers(&dirs);
        let _ = std::fs::remove_dir_all(&root);
    }
}
