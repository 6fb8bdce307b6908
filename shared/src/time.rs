//! Timestamps as the public API writes them: RFC 3339, UTC, whole seconds
//! (`2024-12-15T10:30:00Z`). Held as Unix seconds; the caller supplies "now".

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{format_description::well_known::Rfc3339, OffsetDateTime};

/// A point in time, to the second, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Earliest and latest instants RFC 3339 can write with a four-digit year.
const MIN_UNIX: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
const MAX_UNIX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("{0} is outside the years 1 to 9999")]
    OutOfRange(i64),
    #[error("not an RFC 3339 timestamp like 2024-12-15T10:30:00Z")]
    Malformed,
}

impl Timestamp {
    pub fn from_unix(secs: i64) -> Result<Self, TimestampError> {
        if (MIN_UNIX..=MAX_UNIX).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(TimestampError::OutOfRange(secs))
        }
    }

    /// From milliseconds since the epoch (what `Date.now()` gives), truncated to the second.
    pub fn from_unix_millis(ms: i64) -> Result<Self, TimestampError> {
        Self::from_unix(ms.div_euclid(1000))
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    /// Seconds from `self` to `later` (negative when `later` is earlier).
    pub fn seconds_until(self, later: Self) -> i64 {
        later.0 - self.0
    }

    /// Parses any RFC 3339 timestamp; offsets are converted to UTC, fractions dropped.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimestampError::Malformed)?;
        Self::from_unix(dt.unix_timestamp())
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // In range by construction (years 1 to 9999, so four digits). Written field by field:
        // time's format-description machinery is ~17 KiB of the Worker's wasm.
        let dt = OffsetDateTime::from_unix_timestamp(self.0).map_err(|_| std::fmt::Error)?;
        let (year, month, day) = (dt.year(), u8::from(dt.month()), dt.day());
        let (hour, minute, second) = dt.to_hms();
        write!(f, "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = TimestampError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_whole_seconds() {
        let t = Timestamp::from_unix(1_734_258_600).unwrap();
        assert_eq!(t.to_string(), "2024-12-15T10:30:00Z");
    }

    #[test]
    fn formats_the_ends_of_the_range_with_four_digit_years() {
        assert_eq!(Timestamp::from_unix(MIN_UNIX).unwrap().to_string(), "0001-01-01T00:00:00Z");
        assert_eq!(Timestamp::from_unix(MAX_UNIX).unwrap().to_string(), "9999-12-31T23:59:59Z");
        assert_eq!(Timestamp::from_unix(0).unwrap().to_string(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_offsets_and_fractions_into_utc_seconds() {
        let t = Timestamp::parse("2024-12-15T11:30:00.999+01:00").unwrap();
        assert_eq!(t.to_string(), "2024-12-15T10:30:00Z");
    }

    #[test]
    fn millis_truncate_towards_the_past() {
        assert_eq!(Timestamp::from_unix_millis(1_999).unwrap().unix(), 1);
        assert_eq!(Timestamp::from_unix_millis(-1).unwrap().unix(), -1);
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        assert_eq!(Timestamp::parse("yesterday"), Err(TimestampError::Malformed));
        assert!(Timestamp::from_unix(MAX_UNIX + 1).is_err());
        assert!(Timestamp::from_unix(MIN_UNIX - 1).is_err());
    }
}
