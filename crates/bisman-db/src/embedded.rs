//! A private PostgreSQL started from the machine's own binaries.
//!
//! With no `DATABASE_URL`, Bisman runs its own server: `initdb` once into a
//! data folder, `pg_ctl start` on a free loopback port with
//! `pg_stat_statements` preloaded, and `pg_ctl stop` when done. A server that
//! is already running on the folder (another bisman process) is reused and
//! left running.
//!
//! Why hand-written: the maintained crates for this (`postgresql_embedded`,
//! `pg-embed`) download server binaries from the internet; Bisman must use the
//! binaries the machine already has, and that takes little code.
//!
//! Security: the server listens on 127.0.0.1 only, with no Unix socket, and
//! trusts local connections. It is meant for development and demos;
//! production sets `DATABASE_URL`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use nix::unistd::{Gid, Uid, User};
use sqlx::{Connection, PgConnection};
use tokio::process::Command;

/// What can go wrong with the embedded server.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; looked in: {searched}. \
         Install them (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; \
         macOS: `brew install postgresql@15`), point BISMAN_PG_BIN at their folder, \
         or set DATABASE_URL to use an existing server"
    )]
    NoBinaries {
        /// The places looked at.
        searched: String,
    },
    /// Running as root without a `postgres` system user to run the server as.
    #[error(
        "PostgreSQL refuses to run as root and there is no `postgres` system user to run it as; \
         run bisman as an ordinary user or set DATABASE_URL"
    )]
    NoServerUser,
    /// A file-system operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL command failed.
    #[error("`{command}` failed ({status}): {detail}")]
    Command {
        /// The command.
        command: String,
        /// Its exit status.
        status: String,
        /// Its output, or the end of the server log.
        detail: String,
    },
    /// Connecting to the started server failed.
    #[error("the embedded PostgreSQL started but does not accept connections: {0}")]
    Connect(#[from] sqlx::Error),
}

/// Where and how to run the embedded server.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Bisman's data folder; the cluster lives in `<data_dir>/postgres`.
    pub data_dir: PathBuf,
    /// Loopback port; a free one is picked when `None`.
    pub port: Option<u16>,
}

/// A running embedded PostgreSQL.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    bindir: PathBuf,
    pgdata: PathBuf,
    port: u16,
    started_here: bool,
    run_as: Option<(Uid, Gid)>,
}

impl EmbeddedPostgres {
    /// Starts (initialising on first use) or reuses the server for `opts`.
    pub async fn start(opts: &EmbeddedOptions) -> Result<Self, EmbeddedError> {
        Self::start_from(opts, None).await
    }

    /// Starts (making it on first use) or reuses a hot standby of the server
    /// at `primary_url`: `pg_basebackup -R` copies the primary into the
    /// data folder over a replication connection (WAL streamed alongside)
    /// and leaves `standby.signal` and `primary_conninfo` behind, so that
    /// the started server follows the primary and answers read-only
    /// queries. The primary must allow replication connections from here
    /// (an embedded primary does: `initdb -A trust`).
    pub async fn start_standby(
        primary_url: &str,
        opts: &EmbeddedOptions,
    ) -> Result<Self, EmbeddedError> {
        Self::start_from(opts, Some(primary_url)).await
    }

    async fn start_from(
        opts: &EmbeddedOptions,
        standby_of: Option<&str>,
    ) -> Result<Self, EmbeddedError> {
        let bindir = find_bindir()?;
        let run_as = server_user()?;
        let data_dir = usable_data_dir(&opts.data_dir, run_as)?;
        let pgdata = data_dir.join("postgres");
        let mut server = Self {
            bindir,
            pgdata,
            port: 0,
            started_here: false,
            run_as,
        };

        if let Some(port) = server.running_port().await {
            tracing::info!(port, data = %server.pgdata.display(), "reusing the embedded PostgreSQL already running");
            server.port = port;
            return Ok(server);
        }
        if !server.pgdata.join("PG_VERSION").exists() {
            match standby_of {
                None => server.initdb().await?,
                Some(primary) => server.base_backup(primary).await?,
            }
        }
        server.port = match opts.port {
            Some(p) => p,
            None => free_port().map_err(|source| EmbeddedError::Io {
                what: "picking a free port on",
                path: "127.0.0.1".into(),
                source,
            })?,
        };
        server.pg_ctl_start().await?;
        server.started_here = true;
        Ok(server)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's folder.
    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    /// A connection URL for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, database)
    }

    /// Creates `database` unless it exists.
    pub async fn ensure_database(&self, database: &str) -> Result<(), EmbeddedError> {
        let mut conn = PgConnection::connect(&self.url("postgres")).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await?;
        if !exists {
            let quoted: String = sqlx::query_scalar("SELECT quote_ident($1)")
                .bind(database)
                .fetch_one(&mut conn)
                .await?;
            sqlx::raw_sql(&format!("CREATE DATABASE {quoted}"))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;
        Ok(())
    }

    /// Stops the server if this process started it; a server found running is
    /// left to whoever started it.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        if !self.started_here {
            return Ok(());
        }
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &["-D", &pgdata, "-m", "fast", "-w", "-t", "60", "stop"],
        )
        .await?;
        Ok(())
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are terminated)
    /// but keeps this handle, so that [`Self::start_again`] can bring it back
    /// on the same port with the same data: the "PostgreSQL restarted" fault
    /// of the reliability suite.
    pub async fn stop_keeping(&self) -> Result<(), EmbeddedError> {
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &["-D", &pgdata, "-m", "fast", "-w", "-t", "60", "stop"],
        )
        .await
    }

    /// Starts a server stopped by [`Self::stop_keeping`] again, on its port.
    pub async fn start_again(&self) -> Result<(), EmbeddedError> {
        self.pg_ctl_start().await
    }

    /// Promotes a standby to a primary of its own (`pg_ctl promote`): it
    /// stops following its primary and accepts writes.
    pub async fn promote(&self) -> Result<(), EmbeddedError> {
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        self.run("pg_ctl", &["-D", &pgdata, "-w", "-t", "60", "promote"])
            .await
    }

    async fn running_port(&self) -> Option<u16> {
        let pid_file = std::fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        let status = self
            .command("pg_ctl")
            .args(["-D", &pgdata, "status"])
            .output()
            .await
            .ok()?;
        if !status.status.success() {
            return None;
        }
        // postmaster.pid: pid, data dir, start time, port, ...
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    async fn initdb(&self) -> Result<(), EmbeddedError> {
        create_dir(&self.pgdata, self.run_as)?;
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        tracing::info!(data = %pgdata, "initialising the embedded PostgreSQL");
        self.run(
            "initdb",
            &[
                "-D",
                &pgdata,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        )
        .await?;
        Ok(())
    }

    async fn base_backup(&self, primary_url: &str) -> Result<(), EmbeddedError> {
        create_dir(&self.pgdata, self.run_as)?;
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        tracing::info!(data = %pgdata, "copying the primary for a standby (pg_basebackup)");
        let copied = self
            .run(
                "pg_basebackup",
                &[
                    "-d",
                    primary_url,
                    "-D",
                    &pgdata,
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-password",
                ],
            )
            .await;
        if let Err(EmbeddedError::Command {
            command: _,
            status,
            detail,
        }) = copied
        {
            // Without this the next start would take a half copy for a
            // cluster. (The command line holds the URL: not repeated.)
            let _ = std::fs::remove_dir_all(&self.pgdata);
            return Err(EmbeddedError::Command {
                command: "pg_basebackup".into(),
                status,
                detail,
            });
        }
        copied
    }

    async fn pg_ctl_start(&self) -> Result<(), EmbeddedError> {
        let mut server_opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=200",
            self.port
        );
        if self.bindir.join("../lib/pg_stat_statements.so").exists()
            || self
                .bindir
                .join("../lib/postgresql/pg_stat_statements.so")
                .exists()
            || self.bindir.join("../lib/pg_stat_statements.dylib").exists()
        {
            server_opts.push_str(" -c shared_preload_libraries=pg_stat_statements");
        } else {
            tracing::warn!("pg_stat_statements is not installed; v_slow_queries will stay empty");
        }
        let pgdata = self.pgdata.to_string_lossy().into_owned();
        let log = self
            .pgdata
            .join("server.log")
            .to_string_lossy()
            .into_owned();
        tracing::info!(port = self.port, "starting the embedded PostgreSQL");
        let started = self
            .run(
                "pg_ctl",
                &[
                    "-D",
                    &pgdata,
                    "-l",
                    &log,
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    &server_opts,
                    "start",
                ],
            )
            .await;
        if let Err(EmbeddedError::Command {
            command, status, ..
        }) = started
        {
            return Err(EmbeddedError::Command {
                command,
                status,
                detail: tail(&self.pgdata.join("server.log")),
            });
        }
        started
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(program));
        // The server user may not be able to read the caller's directory.
        cmd.current_dir("/").env("LC_ALL", "C").kill_on_drop(false);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid.as_raw()).gid(gid.as_raw());
        }
        cmd
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<(), EmbeddedError> {
        let output: Output = tokio::time::timeout(
            Duration::from_secs(120),
            self.command(program).args(args).output(),
        )
        .await
        .map_err(|_| EmbeddedError::Command {
            command: program.into(),
            status: "timed out".into(),
            detail: String::new(),
        })?
        .map_err(|source| EmbeddedError::Io {
            what: "running",
            path: self.bindir.join(program),
            source,
        })?;
        if output.status.success() {
            Ok(())
        } else {
            let mut detail = String::from_utf8_lossy(&output.stderr).trim().to_string();
            if detail.is_empty() {
                detail = String::from_utf8_lossy(&output.stdout).trim().to_string();
            }
            Err(EmbeddedError::Command {
                command: format!("{program} {}", args.join(" ")),
                status: output.status.to_string(),
                detail,
            })
        }
    }
}

/// The folder holding `initdb`, `pg_ctl` and `postgres`.
fn find_bindir() -> Result<PathBuf, EmbeddedError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(dir) = std::env::var_os("BISMAN_PG_BIN") {
        candidates.push(dir.into());
    }
    if let Ok(out) = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
    {
        if out.status.success() {
            candidates.push(String::from_utf8_lossy(&out.stdout).trim().into());
        }
    }
    for pattern_root in ["/usr/lib/postgresql", "/opt/homebrew/opt", "/usr/local/opt"] {
        let mut versions: Vec<PathBuf> = std::fs::read_dir(pattern_root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                pattern_root == "/usr/lib/postgresql" || p.to_string_lossy().contains("postgresql")
            })
            .collect();
        // Newest major version first.
        versions.sort_by_key(|p| std::cmp::Reverse(version_of(p)));
        candidates.extend(versions.into_iter().map(|p| p.join("bin")));
    }
    candidates.extend(
        [
            "/usr/local/pgsql/bin",
            "/usr/pgsql/bin",
            "/usr/bin",
            "/usr/local/bin",
        ]
        .map(PathBuf::from),
    );
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    let found = candidates.iter().find(|dir| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    });
    match found {
        Some(dir) => Ok(dir.clone()),
        None => {
            let mut searched: Vec<String> =
                candidates.iter().map(|p| p.display().to_string()).collect();
            searched.dedup();
            Err(EmbeddedError::NoBinaries {
                searched: searched.join(", "),
            })
        }
    }
}

fn version_of(path: &Path) -> u32 {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

/// The user to run the server as: ourselves, or `postgres` when we are root.
fn server_user() -> Result<Option<(Uid, Gid)>, EmbeddedError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name("postgres") {
        Ok(Some(user)) => Ok(Some((user.uid, user.gid))),
        _ => Err(EmbeddedError::NoServerUser),
    }
}

/// `wanted` made absolute; when the server runs as another user who cannot
/// reach it (a data folder under /root, say), a folder under the system's
/// temporary directory instead, named after `wanted` so that it is reused.
fn usable_data_dir(wanted: &Path, run_as: Option<(Uid, Gid)>) -> Result<PathBuf, EmbeddedError> {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> EmbeddedError {
        let path = path.to_path_buf();
        move |source| EmbeddedError::Io { what, path, source }
    }
    std::fs::create_dir_all(wanted).map_err(io("creating", wanted))?;
    let absolute = wanted.canonicalize().map_err(io("resolving", wanted))?;
    let Some((uid, gid)) = run_as else {
        return Ok(absolute);
    };
    if reachable_by(&absolute, uid, gid) {
        return Ok(absolute);
    }
    let digest = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(absolute.as_os_str().as_encoded_bytes())[..6])
    };
    let fallback = std::env::temp_dir().join(format!("bisman-{digest}"));
    tracing::warn!(
        wanted = %absolute.display(), using = %fallback.display(),
        "the postgres user cannot reach the data folder; using a folder it can reach"
    );
    std::fs::create_dir_all(&fallback).map_err(io("creating", &fallback))?;
    Ok(fallback)
}

/// Whether `uid`/`gid` can traverse every ancestor of `path`.
fn reachable_by(path: &Path, uid: Uid, gid: Gid) -> bool {
    path.ancestors()
        .skip(1)
        .all(|dir| match std::fs::metadata(dir) {
            Ok(meta) => {
                let mode = meta.permissions().mode();
                if meta.uid() == uid.as_raw() {
                    mode & 0o100 != 0
                } else if meta.gid() == gid.as_raw() {
                    mode & 0o010 != 0
                } else {
                    mode & 0o001 != 0
                }
            }
            Err(_) => false,
        })
}

/// Creates the cluster folder, owned by the server user, mode 0700.
fn create_dir(dir: &Path, owner: Option<(Uid, Gid)>) -> Result<(), EmbeddedError> {
    let io = |what| {
        move |source| EmbeddedError::Io {
            what,
            path: dir.to_path_buf(),
            source,
        }
    };
    std::fs::create_dir_all(dir).map_err(io("creating"))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("restricting"))?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(dir, Some(uid), Some(gid)).map_err(|e| io("handing over")(e.into()))?;
    }
    Ok(())
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The last lines of the server log, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        assert!(
            version_of(Path::new("/usr/lib/postgresql/15"))
                > version_of(Path::new("/usr/lib/postgresql/9"))
        );
        assert_eq!(version_of(Path::new("/opt/homebrew/opt/postgresql@16")), 16);
    }
}
