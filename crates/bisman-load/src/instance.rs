//! A `bisman serve` child process: started with its own environment, its
//! stdout and stderr written to a log file, its address read from the line
//! it prints once it listens, its memory read from `/proc`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::LoadError;

/// How long a process may take to print that it listens.
const STARTUP: Duration = Duration::from_secs(120);

/// The resident memory of process `pid` in KiB (`VmRSS`), if it runs.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A running `bisman serve`, killed when dropped.
pub struct ServeProcess {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl ServeProcess {
    /// Starts `exe serve --bind 127.0.0.1:0` with `env` added to this
    /// process's environment, logging to `log`, and waits until it listens.
    pub fn spawn(exe: &Path, env: &[(String, String)], log: &Path) -> Result<Self, LoadError> {
        let spawn_err = |what: &str, e: std::io::Error| LoadError::Spawn(format!("{what}: {e}"));
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| spawn_err(&format!("opening {}", log.display()), e))?;
        let stderr = file.try_clone().map_err(|e| spawn_err("log file", e))?;
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--bind", "127.0.0.1:0"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd
            .spawn()
            .map_err(|e| spawn_err(&format!("running {}", exe.display()), e))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Reads the address, then keeps copying stdout to the log so that
        // the process never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut out = file;
            let mut sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(out, "{line}");
                if !sent {
                    if let Some(a) = line.strip_prefix("bisman serve: listening on http://") {
                        let _ = tx.send(a.trim().to_string());
                        sent = true;
                    }
                }
            }
        });
        let mut process = ServeProcess {
            child,
            addr: String::new(),
            log: log.to_path_buf(),
        };
        match rx.recv_timeout(STARTUP) {
            Ok(addr) => {
                process.addr = addr;
                Ok(process)
            }
            Err(_) => Err(LoadError::Spawn(format!(
                "it did not print its address within {STARTUP:?}; log {}:\n{}",
                log.display(),
                tail(log)
            ))),
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log file (stdout and stderr).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Its resident memory in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// SIGKILL: no shutdown, no cleanup (a crash).
    pub fn kill(&mut self) -> std::io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    /// SIGTERM, then waits for the exit (a graceful shutdown).
    pub fn terminate(&mut self) -> std::io::Result<ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)
            .map_err(std::io::Error::from)?;
        self.child.wait()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
