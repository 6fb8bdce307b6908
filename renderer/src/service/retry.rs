//! Retry schedules: exponential backoff with full jitter, within a total budget.

use std::time::Duration;

/// The wait before retry number `attempt` (1 for the first retry): a random point in
/// `[0, min(cap, base * 2^(attempt-1))]`, `jitter` being that point in `[0, 1)`.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, jitter: f64) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX));
    exp.min(cap).mul_f64(jitter.clamp(0.0, 1.0))
}

/// A random number in `[0, 1)`, good enough to spread retries apart.
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(250);
    const CAP: Duration = Duration::from_secs(8);

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let full = |n| backoff(n, BASE, CAP, 1.0);
        assert_eq!(full(1), Duration::from_millis(250));
        assert_eq!(full(2), Duration::from_millis(500));
        assert_eq!(full(4), Duration::from_secs(2));
        assert_eq!(full(10), CAP);
        assert_eq!(full(100), CAP);
    }

    #[test]
    fn jitter_scales_the_wait() {
        assert_eq!(backoff(3, BASE, CAP, 0.0), Duration::ZERO);
        assert_eq!(backoff(3, BASE, CAP, 0.5), Duration::from_millis(500));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
