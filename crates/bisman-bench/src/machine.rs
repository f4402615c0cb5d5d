//! What the numbers were taken on: CPUs, memory, load, operating system,
//! PostgreSQL (version and the settings that move these numbers) and Redis.

use serde::Serialize;

use crate::error::Result;
use crate::server::Server;

/// The machine and servers of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs this process may use.
    pub cpus: usize,
    /// CPU model, when the system says.
    pub cpu_model: Option<String>,
    /// Memory, GiB.
    pub memory_gib: Option<f64>,
    /// Operating system.
    pub os: String,
    /// 1/5/15-minute load averages when the run started.
    pub load_at_start: Option<[f64; 3]>,
    /// … and when it ended.
    pub load_at_end: Option<[f64; 3]>,
    /// `SHOW server_version`.
    pub postgres_version: String,
    /// Settings that move these numbers.
    pub postgres_settings: Vec<(String, String)>,
    /// Redis `redis_version`, when a Redis was given.
    pub redis_version: Option<String>,
    /// Whether this binary was built with optimisations.
    pub release_build: bool,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The three load averages of `/proc/loadavg`.
pub fn load_average() -> Option<[f64; 3]> {
    let text = read("/proc/loadavg")?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn cpu_model() -> Option<String> {
    read("/proc/cpuinfo")?
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn memory_gib() -> Option<f64> {
    let kib: f64 = read("/proc/meminfo")?
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0 / 1024.0)
}

fn os() -> String {
    read("/etc/os-release")
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("PRETTY_NAME="))
                .map(|l| l["PRETTY_NAME=".len()..].trim_matches('"').to_string())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string())
}

async fn redis_version(url: &str) -> Result<String> {
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_string())
}

impl Machine {
    /// Looks at this machine and the servers.
    pub async fn describe(server: &Server, redis_url: Option<&str>) -> Result<Machine> {
        let mut settings = Vec::new();
        for name in [
            "shared_buffers",
            "work_mem",
            "effective_cache_size",
            "random_page_cost",
            "jit",
            "max_parallel_workers_per_gather",
            "synchronous_commit",
        ] {
            settings.push((name.to_string(), server.setting(name).await?));
        }
        let redis_version = match redis_url {
            Some(url) => Some(redis_version(url).await?),
            None => None,
        };
        Ok(Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: cpu_model(),
            memory_gib: memory_gib(),
            os: os(),
            load_at_start: load_average(),
            load_at_end: None,
            postgres_version: server.setting("server_version").await?,
            postgres_settings: settings,
            redis_version,
            release_build: !cfg!(debug_assertions),
        })
    }
}
