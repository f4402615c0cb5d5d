//! Replication lag in time, from the primary's WAL positions over time.
//!
//! A standby says how far it has replayed (`pg_last_wal_replay_lsn()`), not
//! how old that is. `now() - pg_last_xact_replay_timestamp()` is the usual
//! answer and it is wrong both ways: on an idle primary it grows although
//! the standby has everything, and it says nothing while replay is paused
//! between two commits. Instead the monitor samples the primary's flushed
//! position every check and remembers when it first saw each one; a standby
//! that has replayed position `r` is as far behind as the time since the
//! primary was first seen past `r` (to within one check interval), and not
//! behind at all once `r` reaches the newest sample.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Lsn;

/// How far behind a standby is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// No primary position seen yet: unknown.
    Unknown,
    /// Behind by this long (zero when it has replayed the newest position seen).
    Behind(Duration),
    /// Behind the oldest position remembered: at least this long, maybe more
    /// (a standby still catching up after a restart, or a young history).
    AtLeast(Duration),
}

/// The primary's flushed WAL positions, each with the time it was first seen.
#[derive(Debug, Clone)]
pub struct History {
    samples: VecDeque<(Instant, Lsn)>,
    keep: Duration,
}

impl History {
    /// A history that forgets samples older than `keep` (but always keeps
    /// one sample at least that old as an anchor, once it has one).
    pub fn new(keep: Duration) -> Self {
        Self {
            samples: VecDeque::new(),
            keep,
        }
    }

    /// Records that the primary was at `lsn` at `at` (only new positions are kept).
    pub fn push(&mut self, at: Instant, lsn: Lsn) {
        if self.samples.back().is_some_and(|(_, last)| *last >= lsn) {
            return;
        }
        self.samples.push_back((at, lsn));
        // Drop the oldest while the next one is itself older than the window:
        // the sample just before the window stays, so that a standby behind
        // it is known to be more than `keep` behind.
        while self.samples.len() > 1 && at.saturating_duration_since(self.samples[1].0) > self.keep
        {
            self.samples.pop_front();
        }
    }

    /// The newest position seen.
    pub fn latest(&self) -> Option<Lsn> {
        self.samples.back().map(|(_, l)| *l)
    }

    /// How far behind a standby that has replayed `replay` is at `now`.
    pub fn lag(&self, replay: Lsn, now: Instant) -> Lag {
        let Some(&(_, latest)) = self.samples.back() else {
            return Lag::Unknown;
        };
        if replay >= latest {
            return Lag::Behind(Duration::ZERO);
        }
        // The first position past what the standby has replayed: the primary
        // has been ahead of the standby at least since then.
        let i = self.samples.partition_point(|(_, l)| *l <= replay);
        let since = now.saturating_duration_since(self.samples[i].0);
        if i == 0 {
            Lag::AtLeast(since)
        } else {
            Lag::Behind(since)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_the_age_of_the_first_position_not_replayed() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        let mut h = History::new(Duration::from_secs(10));
        assert_eq!(h.lag(Lsn(5), t0), Lag::Unknown);
        h.push(s(0), Lsn(100));
        h.push(s(100), Lsn(100)); // unchanged: not a new sample
        h.push(s(200), Lsn(150));
        h.push(s(300), Lsn(120)); // never backwards
        h.push(s(400), Lsn(200));
        assert_eq!(h.latest(), Some(Lsn(200)));
        // Caught up with the newest position: no lag, however old it is.
        assert_eq!(h.lag(Lsn(200), s(9_000)), Lag::Behind(Duration::ZERO));
        assert_eq!(h.lag(Lsn(250), s(500)), Lag::Behind(Duration::ZERO));
        // Replayed 150 (seen at 200 ms), not 200 (first seen at 400 ms).
        assert_eq!(
            h.lag(Lsn(150), s(1_400)),
            Lag::Behind(Duration::from_secs(1))
        );
        assert_eq!(
            h.lag(Lsn(199), s(1_400)),
            Lag::Behind(Duration::from_secs(1))
        );
        assert_eq!(
            h.lag(Lsn(100), s(1_200)),
            Lag::Behind(Duration::from_secs(1))
        );
        // Behind the oldest sample: only a lower bound is known.
        assert_eq!(
            h.lag(Lsn(99), s(500)),
            Lag::AtLeast(Duration::from_millis(500))
        );
    }

    #[test]
    fn old_samples_are_forgotten_but_one_anchor_stays() {
        let t0 = Instant::now();
        let mut h = History::new(Duration::from_secs(1));
        for i in 0..100u64 {
            h.push(t0 + Duration::from_millis(100 * i), Lsn(i + 1));
        }
        // About a second of samples, plus the one just before it.
        assert!(h.samples.len() <= 12, "{}", h.samples.len());
        let now = t0 + Duration::from_millis(9_900);
        match h.lag(Lsn(1), now) {
            Lag::AtLeast(d) => assert!(d > Duration::from_secs(1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(h.lag(Lsn(99), now), Lag::Behind(Duration::ZERO));
    }
}
