//! What the engine does at rest: it lets go of warm contexts unused for [`warm::IDLE`], and
//! once no render has run for `--rest-after`, has Chromium collect its garbage. V8 keeps what
//! finished documents and CSS generations left behind until allocations push it (measured: up
//! to 460 MiB at rest), so a renderer between bursts would hold it for nothing.

use std::{
    sync::{atomic::Ordering, Weak},
    time::{Duration, Instant},
};

use super::{warm, Inner};

/// When garbage is due: once per quiet spell, `after` into it.
#[derive(Debug, Default)]
pub(crate) struct Rest {
    /// Renders finished when last looked.
    seen: u64,
    quiet_since: Option<Instant>,
    collected: bool,
}

impl Rest {
    /// Whether to collect now, given the renders finished so far and whether any runs or
    /// waits. A render in between starts a new quiet spell.
    pub(crate) fn due(&mut self, done: u64, busy: bool, now: Instant, after: Duration) -> bool {
        if busy || done != self.seen {
            self.seen = done;
            self.quiet_since = (!busy).then_some(now);
            self.collected = false;
            return false;
        }
        let since = *self.quiet_since.get_or_insert(now);
        if self.collected || after.is_zero() || now.duration_since(since) < after {
            return false;
        }
        self.collected = true;
        true
    }
}

/// How often the engine looks.
fn tick(after: Duration) -> Duration {
    if after.is_zero() {
        return warm::IDLE / 6;
    }
    (after / 4).clamp(Duration::from_millis(100), warm::IDLE / 6)
}

/// Tends the engine while it lives.
pub(super) fn tend(inner: Weak<Inner>, after: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(tick(after));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rest = Rest::default();
        loop {
            tick.tick().await;
            let Some(inner) = inner.upgrade() else { return };
            let (gone, instance) = inner.pool.expire_warm().await;
            if let Some(instance) = &instance {
                for target in gone {
                    super::pool::discard(target, instance.clone()).await;
                }
            }
            let load = inner.schedule.load();
            let done =
                inner.renders.load(Ordering::Relaxed) + inner.failures.load(Ordering::Relaxed);
            let busy = load.running + load.waiting > 0;
            if let Some(instance) = instance.filter(|_| rest.due(done, busy, Instant::now(), after))
            {
                let pages = instance.collect_garbage().await;
                inner.rest_collections.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(pages, "at rest: chromium collected its garbage");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(10);

    #[test]
    fn garbage_is_collected_once_per_quiet_spell() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut rest = Rest::default();
        assert!(!rest.due(0, false, at(0), AFTER));
        assert!(!rest.due(0, false, at(9), AFTER));
        assert!(rest.due(0, false, at(10), AFTER));
        assert!(!rest.due(0, false, at(30), AFTER), "once per spell");
        // Renders again: a new spell, counted from when they stopped.
        assert!(!rest.due(0, true, at(31), AFTER));
        assert!(!rest.due(3, false, at(32), AFTER));
        assert!(!rest.due(3, false, at(41), AFTER));
        assert!(rest.due(3, false, at(42), AFTER));
    }

    #[test]
    fn a_render_running_or_finishing_postpones_it() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut rest = Rest::default();
        assert!(!rest.due(0, true, at(0), AFTER));
        assert!(!rest.due(0, true, at(20), AFTER), "a long render is no rest");
        assert!(!rest.due(1, false, at(21), AFTER));
        assert!(!rest.due(2, false, at(30), AFTER), "a render finished meanwhile");
        assert!(rest.due(2, false, at(40), AFTER));
    }

    #[test]
    fn zero_means_never() {
        let t0 = Instant::now();
        let mut rest = Rest::default();
        assert!(!rest.due(0, false, t0, Duration::ZERO));
        assert!(!rest.due(0, false, t0 + Duration::from_secs(3600), Duration::ZERO));
        assert_eq!(tick(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(tick(AFTER), Duration::from_millis(2500));
    }
}
