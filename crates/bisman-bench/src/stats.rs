//! Percentiles and throughput of a set of samples.

use serde::Serialize;

/// The summary of one operation on one layer. Times are microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Samples taken.
    pub samples: usize,
    /// Median.
    pub p50_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Fastest.
    pub min_us: f64,
    /// Slowest.
    pub max_us: f64,
    /// Operations per second of one client running them back to back
    /// (samples over the wall time of the sampling loop).
    pub ops_per_sec: f64,
}

impl Summary {
    /// Summarises `samples_us`, taken back to back over `wall_secs`.
    /// `None` when there are no samples.
    pub fn of(samples_us: &[f64], wall_secs: f64) -> Option<Summary> {
        if samples_us.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = samples_us
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let wall = if wall_secs > 0.0 {
            wall_secs
        } else {
            mean * n as f64 / 1e6
        };
        Some(Summary {
            samples: n,
            p50_us: percentile(&sorted, 50.0),
            p95_us: percentile(&sorted, 95.0),
            p99_us: percentile(&sorted, 99.0),
            mean_us: mean,
            min_us: sorted[0],
            max_us: sorted[n - 1],
            ops_per_sec: if wall > 0.0 { n as f64 / wall } else { 0.0 },
        })
    }
}

/// The nearest-rank percentile `p` (0–100) of sorted, non-empty `sorted`.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    debug_assert!(!sorted.is_empty());
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A duration in microseconds for people: `0.54 µs`, `415 µs`, `12.3 ms`, `1.24 s`.
pub fn human(us: f64) -> String {
    if !us.is_finite() {
        return "—".into();
    }
    if us < 10.0 {
        format!("{us:.2} µs")
    } else if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 10_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else if us < 1_000_000.0 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// How much faster `after` is than `before`: `25.3× faster`, `1.4× slower`.
pub fn ratio(before_us: f64, after_us: f64) -> String {
    if !(before_us > 0.0 && after_us > 0.0) {
        return "—".into();
    }
    let r = before_us / after_us;
    if r >= 1.0 {
        format!("{} faster", times(r))
    } else {
        format!("{} slower", times(1.0 / r))
    }
}

fn times(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&v, 1.0).unwrap();
        assert_eq!((s.p50_us, s.p95_us, s.p99_us), (50.0, 95.0, 99.0));
        assert_eq!((s.min_us, s.max_us, s.mean_us), (1.0, 100.0, 50.5));
        assert_eq!(s.ops_per_sec, 100.0);
        let one = Summary::of(&[7.0], 0.0).unwrap();
        assert_eq!((one.p50_us, one.p99_us), (7.0, 7.0));
        assert!(Summary::of(&[], 1.0).is_none());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(human(0.544), "0.54 µs");
        assert_eq!(human(415.2), "415 µs");
        assert_eq!(human(1_250.0), "1.25 ms");
        assert_eq!(human(12_340.0), "12.3 ms");
        assert_eq!(human(2_500_000.0), "2.50 s");
        assert_eq!(ratio(50.0, 2.0), "25.0× faster");
        assert_eq!(ratio(1.0, 1.4), "1.40× slower");
        assert_eq!(ratio(0.0, 1.0), "—");
    }
}
