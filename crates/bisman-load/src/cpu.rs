//! Where the machine's CPU time went during a run: user plus system time of
//! a process and its children, from `/proc` (Linux only; elsewhere nothing
//! is reported). A PostgreSQL server counts through its postmaster: the
//! backends are its children, those still running read directly, those
//! already gone through the time the postmaster collected from them.

use std::fmt::Write as _;

use serde::Serialize;

/// `/proc` reports times in USER_HZ, which Linux fixes at 100 for user
/// space on every mainstream architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// Fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything.
    let rest = &text[text.rfind(')')? + 2..];
    Some(
        rest.split_whitespace()
            .skip(1) // the state letter
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// CPU seconds used so far by process `pid`, its reaped children, and its
/// live children.
pub fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    // After the state: ppid, pgrp, session, tty, tpgid, flags, minflt,
    // cminflt, majflt, cmajflt, utime, stime, cutime, cstime.
    let own = stat_fields(pid)?;
    let mut ticks: u64 = own.get(10..14)?.iter().sum();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(child) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(child) {
                if f.first() == Some(&u64::from(pid)) {
                    ticks += f.get(10..12).map_or(0, |t| t.iter().sum());
                }
            }
        }
    }
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// One process (tree) to account for.
#[derive(Debug, Clone, Serialize)]
pub struct CpuUse {
    /// What it is (`primary`, `standby 0`, `instance 1`, `load generator`).
    pub name: String,
    /// CPU seconds used during the run.
    pub seconds: f64,
}

/// CPU use of named processes between [`CpuMeter::start`] and [`CpuMeter::finish`].
pub struct CpuMeter {
    started: std::time::Instant,
    at_start: Vec<(String, u32, f64)>,
}

impl CpuMeter {
    /// Reads each `(name, pid)` now.
    pub fn start(processes: Vec<(String, u32)>) -> Self {
        let at_start = processes
            .into_iter()
            .filter_map(|(n, p)| tree_cpu_seconds(p).map(|s| (n, p, s)))
            .collect();
        Self {
            started: std::time::Instant::now(),
            at_start,
        }
    }

    /// Each process's CPU seconds since the start, and the wall seconds.
    pub fn finish(self) -> (Vec<CpuUse>, f64) {
        let used = self
            .at_start
            .into_iter()
            .filter_map(|(name, pid, before)| {
                tree_cpu_seconds(pid).map(|now| CpuUse {
                    name,
                    seconds: (now - before).max(0.0),
                })
            })
            .collect();
        (used, self.started.elapsed().as_secs_f64())
    }
}

/// The CPU table as Markdown: seconds, cores busy on average, share.
pub fn to_markdown(used: &[CpuUse], wall_seconds: f64, cores: usize) -> String {
    let total: f64 = used.iter().map(|u| u.seconds).sum();
    let mut s = format!(
        "\n## CPU during the run ({wall_seconds:.0} s on {cores} cores: {:.0} CPU-seconds available)\n\n| process | CPU s | cores busy | share of what was used |\n|---|---:|---:|---:|\n",
        wall_seconds * cores as f64
    );
    for u in used {
        let _ = writeln!(
            s,
            "| {} | {:.1} | {:.2} | {:.0}% |",
            u.name,
            u.seconds,
            u.seconds / wall_seconds.max(1e-9),
            if total > 0.0 {
                u.seconds * 100.0 / total
            } else {
                0.0
            }
        );
    }
    let _ = writeln!(
        s,
        "| all of the above | {total:.1} | {:.2} | 100% |",
        total / wall_seconds.max(1e-9)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_some_cpu() {
        let pid = std::process::id();
        let before = tree_cpu_seconds(pid).expect("a Linux /proc");
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert!(x != 1);
        let after = tree_cpu_seconds(pid).unwrap();
        assert!(after > before, "{before} → {after}");
    }
}
