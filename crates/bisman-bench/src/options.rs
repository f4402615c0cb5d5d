//! What a run measures and how hard it tries.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A number of generated messages, written like `1M`, `10M`, `250k` or
/// `20000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Rows(u64);

impl Rows {
    /// The smallest data set that still has every shape the measurements need.
    pub const MIN: u64 = 2_000;
    /// The largest this tool accepts.
    pub const MAX: u64 = 200_000_000;
    /// The default of a full run.
    pub const DEFAULT: Rows = Rows(1_000_000);
    /// The default of `--quick`.
    pub const QUICK: Rows = Rows(20_000);

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The lowercase suffix of the data sets' database names (`1m`, `250k`).
    pub fn db_suffix(self) -> String {
        self.to_string().to_ascii_lowercase()
    }
}

impl TryFrom<u64> for Rows {
    type Error = String;
    fn try_from(n: u64) -> Result<Self, Self::Error> {
        if !(Self::MIN..=Self::MAX).contains(&n) {
            return Err(format!(
                "rows must be between {} and {}, got {n}",
                Rows(Self::MIN),
                Rows(Self::MAX)
            ));
        }
        Ok(Rows(n))
    }
}

impl FromStr for Rows {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().replace('_', "");
        let (digits, scale) = match t.chars().last() {
            Some('k' | 'K') => (&t[..t.len() - 1], 1_000u64),
            Some('m' | 'M') => (&t[..t.len() - 1], 1_000_000),
            _ => (t.as_str(), 1),
        };
        let bad = || format!("{s:?} is not a row count (examples: 1M, 10M, 250k, 20000)");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(bad());
        }
        let n = if digits.contains('.') {
            let v: f64 = digits.parse().map_err(|_| bad())?;
            (v * scale as f64).round() as u64
        } else {
            digits
                .parse::<u64>()
                .ok()
                .and_then(|v| v.checked_mul(scale))
                .ok_or_else(bad)?
        };
        Rows::try_from(n)
    }
}

impl fmt::Display for Rows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n % 1_000_000 == 0 {
            write!(f, "{}M", n / 1_000_000)
        } else if n % 1_000 == 0 {
            write!(f, "{}k", n / 1_000)
        } else {
            write!(f, "{n}")
        }
    }
}

/// How many times each operation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Effort {
    /// Untimed runs before sampling starts.
    pub warmup: usize,
    /// Samples of an in-memory or single-key operation.
    pub fast_samples: usize,
    /// Samples of a query.
    pub query_samples: usize,
    /// Fewest samples of any operation, whatever the time budget.
    pub min_samples: usize,
    /// Time budget of one operation on one layer: sampling stops there once
    /// `min_samples` were taken.
    #[serde(with = "secs")]
    pub budget: Duration,
    /// Retention runs (each on its own fresh month).
    pub retention_runs: usize,
    /// Distinct (thread, user) pairs the queries rotate through.
    pub pairs: usize,
    /// Distinct sessions and permission checks the cache measurements rotate through.
    pub keys: usize,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Effort {
    /// A full run: thousands of samples, a few seconds per operation and layer.
    pub fn full() -> Self {
        Self {
            warmup: 200,
            fast_samples: 20_000,
            query_samples: 2_000,
            min_samples: 20,
            budget: Duration::from_secs(20),
            retention_runs: 3,
            pairs: 400,
            keys: 1_000,
        }
    }

    /// `--quick`: a few iterations of everything, for CI.
    pub fn quick() -> Self {
        Self {
            warmup: 5,
            fast_samples: 200,
            query_samples: 30,
            min_samples: 5,
            budget: Duration::from_secs(2),
            retention_runs: 1,
            pairs: 20,
            keys: 20,
        }
    }
}

/// Everything a run needs.
#[derive(Clone)]
pub struct BenchOptions {
    /// Messages in the data sets.
    pub rows: Rows,
    /// Few iterations (CI).
    pub quick: bool,
    /// Where `bench.md`, `bench.json` and `bench.svg` go.
    pub out: PathBuf,
    /// PostgreSQL server to put the data sets on: any database URL on it
    /// (may hold a password: never logged).
    pub database_url: String,
    /// Redis for the cache layers and peers; without it those rows are skipped.
    pub redis_url: Option<String>,
    /// Rebuild the data sets even when they are current.
    pub rebuild: bool,
    /// Seed of the generator.
    pub seed: u64,
    /// The command line as the user typed it, recorded with the results.
    pub command: String,
}

impl BenchOptions {
    /// Iteration counts for this run.
    pub fn effort(&self) -> Effort {
        if self.quick {
            Effort::quick()
        } else {
            Effort::full()
        }
    }
}

impl fmt::Debug for BenchOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may hold passwords.
        f.debug_struct("BenchOptions")
            .field("rows", &self.rows)
            .field("quick", &self.quick)
            .field("out", &self.out)
            .field("redis", &self.redis_url.is_some())
            .field("rebuild", &self.rebuild)
            .field("seed", &self.seed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_row_counts() {
        for (text, n) in [
            ("1M", 1_000_000),
            ("10m", 10_000_000),
            ("250k", 250_000),
            ("250K", 250_000),
            ("20000", 20_000),
            ("1_000_000", 1_000_000),
            ("1.5M", 1_500_000),
        ] {
            assert_eq!(text.parse::<Rows>().unwrap().get(), n, "{text}");
        }
        for bad in ["abc", "", "M", "-1", "1G", "1e6", "10", "999M"] {
            assert!(bad.parse::<Rows>().is_err(), "{bad}");
        }
    }

    #[test]
    fn names_row_counts() {
        assert_eq!(Rows::DEFAULT.to_string(), "1M");
        assert_eq!(Rows::QUICK.db_suffix(), "20k");
        assert!("1500".parse::<Rows>().unwrap_err().contains("between"));
        assert_eq!(Rows::try_from(2_500).unwrap().to_string(), "2500");
    }
}
