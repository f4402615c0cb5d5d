//! `bisman_try_timestamp`: a timestamp from JSON text, or nothing.
//!
//! Accepted (the SQL's pattern, anchored, ASCII only):
//!
//! ```text
//! ws* YYYY-MM-DD ( [T ] hh:mm ( :ss ( .f{1,6} )? )? )? ws* ( Z | [+-]hh ( :? mm )? )? ws*
//! ```
//!
//! with the year 1000–9999, hours 00–23, minutes and seconds 00–59, offsets
//! up to ±15:59 (PostgreSQL's limit), no `-hh` offset glued to a bare date
//! (`2024-01-15-05`, which PostgreSQL's parser refuses), the day within its
//! month (leap years included), and `ws`
//! one of space, tab, LF, CR, FF, VT (what PostgreSQL's date parser skips).
//! A value with an offset is converted to UTC; one without is taken as UTC
//! (the normalisation functions run with `TimeZone = 'UTC'`).

use chrono::{Duration, NaiveDate, NaiveDateTime, NaiveTime};

/// The whitespace PostgreSQL's date/time parser skips (C `isspace`).
pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// A cursor over ASCII input.
struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.at += 1;
        }
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let end = self.at.checked_add(n)?;
        let bytes = self.s.get(self.at..end)?;
        if !bytes.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.at = end;
        Some(bytes.iter().fold(0, |v, b| v * 10 + u32::from(b - b'0')))
    }

    /// A two-digit field at most `max`.
    fn field(&mut self, max: u32) -> Option<u32> {
        let start = self.at;
        match self.digits(2) {
            Some(v) if v <= max => Some(v),
            _ => {
                self.at = start;
                None
            }
        }
    }
}

/// The parsed text, before conversion.
struct Parts {
    date: NaiveDate,
    time: NaiveTime,
    /// Offset east of UTC, in minutes.
    offset_minutes: i64,
}

/// The timestamp `p` denotes, in UTC, or `None` when it is not one.
pub fn try_timestamp(p: &str) -> Option<NaiveDateTime> {
    let parts = parse(p)?;
    let local = parts.date.and_time(parts.time);
    local.checked_sub_signed(Duration::minutes(parts.offset_minutes))
}

fn parse(p: &str) -> Option<Parts> {
    let mut c = Cursor {
        s: p.as_bytes(),
        at: 0,
    };
    c.spaces();
    let date = date(&mut c)?;
    let time = time(&mut c);
    if time.is_none() && c.peek() == Some(b'-') {
        // `2024-01-15-05`: PostgreSQL's parser refuses it.
        return None;
    }
    let time = time.unwrap_or(NaiveTime::MIN);
    c.spaces();
    let offset_minutes = zone(&mut c).unwrap_or(0);
    c.spaces();
    (c.at == c.s.len()).then_some(Parts {
        date,
        time,
        offset_minutes,
    })
}

fn date(c: &mut Cursor<'_>) -> Option<NaiveDate> {
    if !matches!(c.peek(), Some(b'1'..=b'9')) {
        return None;
    }
    let year = c.digits(4)?;
    if !c.eat(b'-') {
        return None;
    }
    let month = c.digits(2).filter(|m| (1..=12).contains(m))?;
    if !c.eat(b'-') {
        return None;
    }
    let day = c.digits(2).filter(|d| (1..=31).contains(d))?;
    // Within its month (the SQL's days-in-month check).
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

/// `[T ]hh:mm(:ss(.f{1,6})?)?`, consumed only when it all matches.
fn time(c: &mut Cursor<'_>) -> Option<NaiveTime> {
    let start = c.at;
    let parsed = (|| {
        if !(c.eat(b'T') || c.eat(b' ')) {
            return None;
        }
        let hour = c.field(23)?;
        if !c.eat(b':') {
            return None;
        }
        let minute = c.field(59)?;
        let (mut second, mut micros) = (0, 0);
        let before_seconds = c.at;
        if c.eat(b':') {
            match c.field(59) {
                Some(s) => {
                    second = s;
                    micros = fraction(c);
                }
                None => c.at = before_seconds,
            }
        }
        NaiveTime::from_hms_micro_opt(hour, minute, second, micros)
    })();
    if parsed.is_none() {
        c.at = start;
    }
    parsed
}

/// `.f{1,6}` as microseconds; nothing consumed when absent or malformed.
fn fraction(c: &mut Cursor<'_>) -> u32 {
    let start = c.at;
    if !c.eat(b'.') {
        return 0;
    }
    let mut value = 0;
    let mut n = 0;
    while n < 6 && c.peek().is_some_and(|b| b.is_ascii_digit()) {
        value = value * 10 + u32::from(c.s[c.at] - b'0');
        c.at += 1;
        n += 1;
    }
    if n == 0 {
        c.at = start;
        return 0;
    }
    value * 10u32.pow(6 - n)
}

/// `Z` or `[+-]hh(:?mm)?`, as minutes east of UTC.
fn zone(c: &mut Cursor<'_>) -> Option<i64> {
    if c.eat(b'Z') {
        return Some(0);
    }
    let start = c.at;
    let sign = match c.peek() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return None,
    };
    c.at += 1;
    let Some(hours) = c.field(15) else {
        c.at = start;
        return None;
    };
    let before_minutes = c.at;
    c.eat(b':');
    let minutes = match c.field(59) {
        Some(m) => m,
        None => {
            c.at = before_minutes;
            0
        }
    };
    Some(sign * i64::from(hours * 60 + minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Option<String> {
        try_timestamp(s).map(|t| t.format("%Y-%m-%d %H:%M:%S%.f").to_string())
    }

    #[test]
    fn accepts_the_iso_shapes() {
        assert_eq!(ts("2024-01-15").as_deref(), Some("2024-01-15 00:00:00"));
        assert_eq!(
            ts(" 2024-01-15T10:20 ").as_deref(),
            Some("2024-01-15 10:20:00")
        );
        assert_eq!(
            ts("2024-01-15 10:20:30.5Z").as_deref(),
            Some("2024-01-15 10:20:30.500")
        );
        assert_eq!(
            ts("2024-01-15T10:20:30.123456+05:30").as_deref(),
            Some("2024-01-15 04:50:30.123456")
        );
        assert_eq!(ts("2024-01-15+05").as_deref(), Some("2024-01-14 19:00:00"));
        assert_eq!(
            ts("\t2024-02-29 -0130\n").as_deref(),
            Some("2024-02-29 01:30:00")
        );
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "2024",
            "0999-01-01",
            "2024-13-01",
            "2024-02-30",
            "2023-02-29",
            "2024-01-15T",
            "2024-01-15T24:00",
            "2024-01-15 10:60",
            "2024-01-15 10:00:60",
            "2024-01-15 10:00:00.1234567",
            "2024-01-15 10:00:00.",
            "2024-01-15t10:00",
            "2024-01-15 +24",
            "2024-01-15 10:00+16",
            "2024-01-15-05",
            "2024-01-15 +05:3",
            "2024-01-15 z",
            "\u{2003}2024-01-15",
            "2024-01-15\u{a0}",
            "١٢٣٤-01-01",
            "2024-01-15 now",
        ] {
            assert_eq!(ts(bad), None, "{bad:?}");
        }
    }
}
