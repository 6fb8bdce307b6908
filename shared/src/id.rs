//! Job ids: ULIDs when we make them (26 characters of Crockford base32, time-ordered).
//!
//! Parsing is a little wider than ULID (16 to 32 characters of the same alphabet), because ids
//! travel back to us in URLs and TailPDF's own examples use 24-character ids; anything else is
//! not an id of ours and is answered with 404 by the callers.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a job id: expected 16 to 32 characters of 0-9 and A-Z (without I, L, O, U)")]
pub struct InvalidJobId;

/// Crockford's base32 alphabet, in the order of its values.
pub(crate) const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

impl JobId {
    /// A new, time-ordered id.
    pub fn generate() -> Self {
        Self(ulid::Ulid::generate().to_string())
    }

    /// A new id for an instant given by the caller's clock (the Worker's `Date.now()`), with
    /// 80 random bits from the platform's generator.
    pub fn generate_at(unix_ms: u64) -> Self {
        let mut random = [0u8; 16];
        // Without randomness the ids would collide; every supported platform has it.
        getrandom::fill(&mut random).unwrap_or_else(|e| panic!("no random numbers: {e}"));
        Self::from_parts(unix_ms, u128::from_le_bytes(random))
    }

    /// An id from its parts (tests, and callers that bring their own clock and randomness).
    pub fn from_parts(unix_ms: u64, random: u128) -> Self {
        Self(ulid::Ulid::from_parts(unix_ms, random).to_string())
    }

    /// Accepts ids case-insensitively and keeps them upper-case.
    pub fn parse(s: &str) -> Result<Self, InvalidJobId> {
        if !(16..=32).contains(&s.len()) {
            return Err(InvalidJobId);
        }
        let upper = s.to_ascii_uppercase();
        if upper.chars().all(|c| CROCKFORD.contains(c)) {
            Ok(Self(upper))
        } else {
            Err(InvalidJobId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whole seconds from when a ULID of ours was made to `now` (0 if `now` is earlier);
    /// `None` for an id of another shape.
    pub fn age_secs(&self, now: crate::Timestamp) -> Option<u64> {
        let made_ms = ulid::Ulid::from_string(&self.0).ok()?.timestamp_ms();
        let now_ms = u64::try_from(now.unix()).unwrap_or(0) * 1000;
        Some(now_ms.saturating_sub(made_ms) / 1000)
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for JobId {
    type Err = InvalidJobId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_26_char_ulids_that_parse_back() {
        let id = JobId::generate();
        assert_eq!(id.as_str().len(), 26);
        assert_eq!(JobId::parse(id.as_str()), Ok(id.clone()));
        assert!(ulid::Ulid::from_string(id.as_str()).is_ok());
    }

    #[test]
    fn ids_for_a_given_instant_carry_it() {
        let a = JobId::generate_at(1_764_230_000_000);
        let b = JobId::generate_at(1_764_230_000_000);
        assert_ne!(a, b);
        let u = ulid::Ulid::from_string(a.as_str()).unwrap();
        assert_eq!(u.timestamp_ms(), 1_764_230_000_000);
        let at = |s| crate::Timestamp::from_unix(s).unwrap();
        assert_eq!(a.age_secs(at(1_764_230_005)), Some(5));
        assert_eq!(a.age_secs(at(1_764_229_000)), Some(0), "made after now: no age");
        let seed_example = JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap();
        assert_eq!(seed_example.age_secs(at(0)), None, "24 characters: no ULID, no instant");
    }

    #[test]
    fn ids_sort_by_time() {
        let a = JobId::from_parts(1_000, u128::MAX);
        let b = JobId::from_parts(1_001, 0);
        assert!(a < b);
    }

    #[test]
    fn accepts_the_seed_example_and_lower_case() {
        assert!(JobId::parse("01JFXYZ123456789ABCDEFGH").is_ok());
        assert_eq!(
            JobId::parse("01jfxyz123456789abcdefgh").unwrap().as_str(),
            "01JFXYZ123456789ABCDEFGH"
        );
    }

    #[test]
    fn rejects_wrong_length_and_letters_outside_crockford() {
        assert_eq!(JobId::parse("01JFXYZ"), Err(InvalidJobId));
        assert_eq!(JobId::parse(&"0".repeat(33)), Err(InvalidJobId));
        assert_eq!(JobId::parse("01JFXYZ123456789ABCDEFGU"), Err(InvalidJobId));
        assert_eq!(JobId::parse("../../etc/passwd/aaaaaa"), Err(InvalidJobId));
    }
}
