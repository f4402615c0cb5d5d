//! WAL positions (`pg_lsn`) as numbers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sqlx::PgPool;

/// A position in the write-ahead log: bytes since the start of the WAL,
/// written the way PostgreSQL writes a `pg_lsn` (`16/B374D848`: the high and
/// low 32 bits in hexadecimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Not a `pg_lsn`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a WAL position like 16/B374D848")]
pub struct InvalidLsn(pub String);

impl FromStr for Lsn {
    type Err = InvalidLsn;

    /// `X/Y`, each half 1 to 8 hexadecimal digits (PostgreSQL's own format).
    fn from_str(s: &str) -> Result<Self, InvalidLsn> {
        let bad = || InvalidLsn(s.chars().take(40).collect());
        let (hi, lo) = s.trim().split_once('/').ok_or_else(bad)?;
        let half = |h: &str| {
            if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                None
            } else {
                u64::from_str_radix(h, 16).ok()
            }
        };
        let (hi, lo) = (half(hi).ok_or_else(bad)?, half(lo).ok_or_else(bad)?);
        Ok(Lsn((hi << 32) | lo))
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Lsn {
    /// Bytes from `earlier` to `self` (0 when `earlier` is ahead).
    pub fn bytes_after(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The primary's WAL flushed to disk so far (`pg_current_wal_flush_lsn()`).
///
/// Read after a commit, it is at or past that commit's record whenever
/// `synchronous_commit` is on (the commit waited for the flush), and it is
/// only ever a position a standby can replay to: standbys receive flushed
/// WAL only. (`pg_current_wal_insert_lsn()` can point past a page header no
/// standby ever reports, and `pg_current_wal_lsn()` past WAL not yet sent.)
pub async fn primary_flush_lsn(pool: &PgPool) -> Result<Lsn, sqlx::Error> {
    let text: String = sqlx::query_scalar("SELECT pg_current_wal_flush_lsn()::text")
        .fetch_one(pool)
        .await?;
    text.parse()
        .map_err(|e: InvalidLsn| sqlx::Error::Decode(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_postgres_text() {
        for (text, n) in [
            ("0/0", 0u64),
            ("0/3016038", 0x3016038),
            ("16/B374D848", (0x16 << 32) | 0xB374_D848),
            ("FFFFFFFF/FFFFFFFF", u64::MAX),
        ] {
            let lsn: Lsn = text.parse().unwrap();
            assert_eq!(lsn, Lsn(n));
            assert_eq!(lsn.to_string(), text);
        }
        assert_eq!(
            "16/b374d848".parse::<Lsn>().unwrap().to_string(),
            "16/B374D848"
        );
        for bad in [
            "",
            "/",
            "1/",
            "/1",
            "1/2/3",
            "x/1",
            "123456789/0",
            "0x1/2",
            "+1/2",
            "1 /2",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad}");
        }
        let json = serde_json::to_string(&Lsn(0x1_0000_0002)).unwrap();
        assert_eq!(json, "\"1/2\"");
        assert_eq!(
            serde_json::from_str::<Lsn>(&json).unwrap(),
            Lsn(0x1_0000_0002)
        );
        assert!(Lsn(5) > Lsn(4) && Lsn(5).bytes_after(Lsn(7)) == 0);
    }
}
