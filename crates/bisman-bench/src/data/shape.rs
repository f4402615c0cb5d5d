//! How big each part of a data set is, and when its messages were written.

use chrono::{Datelike, Months, NaiveDate, NaiveDateTime, Timelike, Utc};

use crate::options::Rows;

/// The sizes of a data set, all derived from the number of messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    /// Messages.
    pub rows: Rows,
    /// Generator seed.
    pub seed: u64,
    /// Tenants.
    pub tenants: i64,
    /// Users (a multiple of `tenants`; the first of each tenant is its super admin).
    pub users: i64,
    /// Message threads (sizes Zipf-distributed).
    pub threads: i64,
    /// Sessions per user in `user_sessions`.
    pub sessions_per_user: i64,
    /// Months the messages span (the current one included).
    pub months: i32,
}

impl Shape {
    /// The shape of a data set of `rows` messages: about 200 messages per
    /// user, 100 per thread on average, one tenant per 100k messages.
    pub fn for_rows(rows: Rows, seed: u64) -> Shape {
        let n = rows.get() as i64;
        let tenants = (n / 100_000).clamp(2, 50);
        let per_tenant = (n / 200 / tenants).clamp(30, 4_000);
        Shape {
            rows,
            seed,
            tenants,
            users: tenants * per_tenant,
            threads: (n / 100).clamp(20, 2_000_000),
            sessions_per_user: 2,
            months: 15,
        }
    }

    /// Users in each tenant.
    pub fn users_per_tenant(&self) -> i64 {
        self.users / self.tenants
    }
}

/// When a data set's messages were written: from the first day of the month
/// `months - 1` before the build's month up to the build's moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeline {
    /// First day of the first month with messages.
    pub start_month: NaiveDate,
    /// The newest message is just before this.
    pub end: NaiveDateTime,
}

impl Timeline {
    /// The timeline of a data set built now, 15 months long.
    pub fn now() -> Timeline {
        Self::ending_at(Utc::now().naive_utc(), 15)
    }

    /// The timeline of `months` months ending at `end`.
    pub fn ending_at(end: NaiveDateTime, months: u32) -> Timeline {
        let first = NaiveDate::from_ymd_opt(end.year(), end.month(), 1).unwrap_or(end.date());
        let start_month = first
            .checked_sub_months(Months::new(months.saturating_sub(1)))
            .unwrap_or(first);
        let end = end.with_nanosecond(0).unwrap_or(end);
        Timeline { start_month, end }
    }

    /// The first message's time.
    pub fn start(&self) -> NaiveDateTime {
        self.start_month.and_hms_opt(0, 0, 0).unwrap_or_default()
    }

    /// Seconds between the first and the last message.
    pub fn span_secs(&self) -> f64 {
        (self.end - self.start()).num_milliseconds() as f64 / 1000.0
    }

    /// Messages after this are "recent": about half of them are unread;
    /// everything up to it is read (every participant's read position).
    pub fn recent(&self) -> NaiveDateTime {
        self.end - chrono::Duration::days(7)
    }

    /// First days of every month with messages, oldest first.
    pub fn months(&self) -> Vec<NaiveDate> {
        let mut out = Vec::new();
        let mut m = self.start_month;
        while m.and_hms_opt(0, 0, 0).unwrap_or_default() < self.end {
            out.push(m);
            match m.checked_add_months(Months::new(1)) {
                Some(next) => m = next,
                None => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_scale_with_rows() {
        let quick = Shape::for_rows(Rows::QUICK, 1);
        assert_eq!((quick.tenants, quick.users, quick.threads), (2, 100, 200));
        let full = Shape::for_rows(Rows::DEFAULT, 1);
        assert_eq!(
            (full.tenants, full.users, full.threads),
            (10, 5_000, 10_000)
        );
        assert_eq!(full.users % full.tenants, 0);
    }

    #[test]
    fn fifteen_months_across_a_year_boundary() {
        let end = NaiveDate::from_ymd_opt(2026, 2, 10)
            .unwrap()
            .and_hms_opt(13, 45, 10)
            .unwrap();
        let t = Timeline::ending_at(end, 15);
        assert_eq!(t.start_month, NaiveDate::from_ymd_opt(2024, 12, 1).unwrap());
        let months = t.months();
        assert_eq!(months.len(), 15);
        assert_eq!(months[14], NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
        assert!(t.recent() < t.end && t.span_secs() > 400.0 * 86_400.0);
    }
}
