//! Months and partition names, the Rust twin of the SQL helpers
//! `bisman_utc_month` and `bisman_partition_name`.
//!
//! Partitions are UTC calendar months named `{table}_pYYYY_MM`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Utc};

/// A UTC calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: u32,
}

impl Month {
    /// The month `year`-`month` (1–12); `None` when out of range.
    pub fn new(year: i32, month: u32) -> Option<Self> {
        ((1..=12).contains(&month) && (1..=9999).contains(&year)).then_some(Self { year, month })
    }

    /// The UTC month that contains `at`.
    pub fn containing(at: DateTime<Utc>) -> Self {
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    /// The month containing a naive UTC timestamp.
    pub fn containing_naive(at: NaiveDateTime) -> Self {
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    /// The current UTC month.
    pub fn current() -> Self {
        Self::containing(Utc::now())
    }

    /// Its year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// Its month number, 1–12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// This month moved by `delta` months (negative goes back).
    pub fn plus(self, delta: i32) -> Self {
        let index = self.year * 12 + (self.month as i32 - 1) + delta;
        Self {
            year: index.div_euclid(12),
            month: index.rem_euclid(12) as u32 + 1,
        }
    }

    /// Months from `self` to `other` (positive when `other` is later).
    pub fn months_until(self, other: Month) -> i32 {
        (other.year * 12 + other.month as i32) - (self.year * 12 + self.month as i32)
    }

    /// Its first day.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("validated month")
    }

    /// Its inclusive start as a naive UTC timestamp (the partition's lower bound).
    pub fn start(self) -> NaiveDateTime {
        self.first_day()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
    }

    /// Its exclusive end (the next month's start).
    pub fn end(self) -> NaiveDateTime {
        self.plus(1).start()
    }

    /// `{base}_pYYYY_MM`, the spec's partition name.
    pub fn partition_name(self, base: &str) -> String {
        format!("{base}_p{:04}_{:02}", self.year, self.month)
    }

    /// Parses the month back out of a partition name of `base`.
    pub fn from_partition_name(base: &str, name: &str) -> Option<Self> {
        let rest = name.strip_prefix(base)?.strip_prefix("_p")?;
        let (y, m) = rest.split_once('_')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        Self::new(y.parse().ok()?, m.parse().ok()?)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crosses_year_boundaries() {
        let dec = Month::new(2026, 12).unwrap();
        assert_eq!(dec.plus(1), Month::new(2027, 1).unwrap());
        assert_eq!(dec.plus(-12), Month::new(2025, 12).unwrap());
        assert_eq!(Month::new(2027, 1).unwrap().plus(-1), dec);
        assert_eq!(
            dec.partition_name("thread_messages"),
            "thread_messages_p2026_12"
        );
        assert_eq!(dec.end().to_string(), "2027-01-01 00:00:00");
    }

    #[test]
    fn rejects_bad_names() {
        assert_eq!(Month::from_partition_name("t", "t_p2026_13"), None);
        assert_eq!(Month::from_partition_name("t", "t_default"), None);
        assert_eq!(Month::from_partition_name("t", "u_p2026_01"), None);
        assert_eq!(Month::from_partition_name("t", "t_p2026_1"), None);
    }

    proptest! {
        #[test]
        fn plus_is_invertible(y in 1900i32..2500, m in 1u32..=12, d in -600i32..600) {
            let a = Month::new(y, m).unwrap();
            prop_assert_eq!(a.plus(d).plus(-d), a);
            prop_assert_eq!(a.months_until(a.plus(d)), d);
        }

        #[test]
        fn names_round_trip_and_sort_like_months(y in 1900i32..2500, m in 1u32..=12, d in 0i32..400) {
            let a = Month::new(y, m).unwrap();
            let b = a.plus(d);
            prop_assert_eq!(Month::from_partition_name("audit_logs", &a.partition_name("audit_logs")), Some(a));
            prop_assert!(a.partition_name("x") <= b.partition_name("x"));
            prop_assert!(a.start() < a.end());
            prop_assert_eq!(a.end(), a.plus(1).start());
        }

        #[test]
        fn containing_agrees_with_bounds(secs in 0i64..8_000_000_000) {
            let at = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let m = Month::containing(at);
            prop_assert!(m.start() <= at.naive_utc() && at.naive_utc() < m.end());
        }
    }
}
