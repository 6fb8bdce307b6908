//! What one render may take from the network: requests in number and at once, and bytes in
//! all. Shared by the interceptor's tasks of one render. The first limit crossed is kept: the
//! render fails with it (the document is incomplete otherwise), and further requests are
//! refused at once so the page finishes quickly.

use std::sync::{
    atomic::{AtomicU32, AtomicU64, Ordering},
    Arc, OnceLock,
};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::{config::RenderLimits, error::LimitExceeded};

pub(crate) struct Budget {
    limits: RenderLimits,
    requests: AtomicU32,
    bytes: AtomicU64,
    slots: Arc<Semaphore>,
    exceeded: OnceLock<LimitExceeded>,
    tripped: Notify,
}

impl Budget {
    pub(crate) fn new(limits: RenderLimits) -> Self {
        Self {
            limits,
            requests: AtomicU32::new(0),
            bytes: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new(limits.concurrent_requests.max(1) as usize)),
            exceeded: OnceLock::new(),
            tripped: Notify::new(),
        }
    }

    /// Counts one request of the page, and waits for a place among those fetched at once.
    pub(crate) async fn admit(&self) -> Result<OwnedSemaphorePermit, LimitExceeded> {
        self.check()?;
        if self.requests.fetch_add(1, Ordering::SeqCst) >= self.limits.requests {
            return Err(self.trip(LimitExceeded::Requests(self.limits.requests)));
        }
        let slot = self.slots.clone().acquire_owned().await;
        self.check()?;
        slot.map_err(|_| self.trip(LimitExceeded::Requests(self.limits.requests)))
    }

    /// Counts `n` more bytes received for the page.
    pub(crate) fn take_bytes(&self, n: u64) -> Result<(), LimitExceeded> {
        let total = self.bytes.fetch_add(n, Ordering::SeqCst) + n;
        if total > self.limits.render_bytes {
            return Err(self.trip(LimitExceeded::RenderBytes(self.limits.render_bytes)));
        }
        self.check()
    }

    /// Requests of the page counted so far.
    pub(crate) fn requests(&self) -> u32 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Bytes one more resource may have.
    pub(crate) fn resource_limit(&self) -> u64 {
        self.limits.resource_bytes
    }

    /// The limit crossed, if any.
    pub(crate) fn exceeded(&self) -> Option<LimitExceeded> {
        self.exceeded.get().cloned()
    }

    /// Resolves once a limit is crossed.
    pub(crate) async fn crossed(&self) -> LimitExceeded {
        loop {
            let notified = self.tripped.notified();
            if let Some(e) = self.exceeded() {
                return e;
            }
            notified.await;
        }
    }

    /// Records `limit` (the first one crossed wins) and wakes the render.
    pub(crate) fn trip(&self, limit: LimitExceeded) -> LimitExceeded {
        let first = self.exceeded.get_or_init(|| limit).clone();
        self.slots.close();
        self.tripped.notify_waiters();
        first
    }

    fn check(&self) -> Result<(), LimitExceeded> {
        self.exceeded().map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(requests: u32, render_bytes: u64, concurrent: u32) -> RenderLimits {
        RenderLimits {
            requests,
            render_bytes,
            concurrent_requests: concurrent,
            ..crate::config::EngineConfig::defaults().limits
        }
    }

    #[tokio::test]
    async fn requests_past_the_limit_are_refused_and_the_first_limit_is_kept() {
        let b = Budget::new(limits(2, 1000, 8));
        let _a = b.admit().await.unwrap();
        let _b = b.admit().await.unwrap();
        assert_eq!(b.admit().await.unwrap_err(), LimitExceeded::Requests(2));
        // Bytes after that report the limit already crossed.
        assert_eq!(b.take_bytes(5000).unwrap_err(), LimitExceeded::Requests(2));
        assert_eq!(b.crossed().await, LimitExceeded::Requests(2));
    }

    #[tokio::test]
    async fn bytes_are_counted_across_requests() {
        let b = Budget::new(limits(100, 1000, 8));
        b.take_bytes(600).unwrap();
        b.take_bytes(400).unwrap();
        assert_eq!(b.take_bytes(1).unwrap_err(), LimitExceeded::RenderBytes(1000));
        assert!(b.admit().await.is_err(), "nothing more is fetched after a limit");
    }

    #[tokio::test]
    async fn requests_wait_for_a_place_among_those_at_once() {
        let b = Arc::new(Budget::new(limits(100, 1000, 1)));
        let first = b.admit().await.unwrap();
        let waiting = tokio::spawn({
            let b = b.clone();
            async move { b.admit().await.map(|_| ()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a second request ran beside the first");
        drop(first);
        waiting.await.unwrap().unwrap();
    }
}
