//! Where renders run, and the lifecycle of what they run in: the current Chromium (started
//! again when it died, stopped answering or is due a restart), the shared tabs (reused, reset
//! off the latency path), and spare fresh targets, one per tab (browser contexts made ahead of
//! time, so that a document that runs scripts does not wait for one to start).

use std::{
    sync::{atomic::Ordering, Arc},
    time::Duration,
};

use tokio::sync::{Mutex, Notify};

use super::{
    browser::Instance,
    schedule::Slot,
    target::{Kind, Leftovers, Target},
    Engine,
};
use crate::error::RenderError;

/// How long closing a tab or disposing of a context may take before Chromium counts as hung.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(super) struct Pool {
    state: Mutex<State>,
    /// Woken when a spare fresh target is made (or failed to be).
    made: Notify,
}

#[derive(Default)]
struct State {
    instance: Option<Arc<Instance>>,
    /// Shared tabs of the current instance, free.
    idle: Vec<Target>,
    /// Fresh targets of the current instance, ready.
    spares: Vec<Target>,
    /// Fresh targets being made.
    making: usize,
    renders_on_instance: u64,
}

/// A target checked out for one render: closed (or its context disposed of) if the render is
/// abandoned (deadline, error), so a broken or busy target is never reused.
pub(super) struct Lease<'a> {
    target: Option<Target>,
    instance: Arc<Instance>,
    engine: &'a Engine,
}

impl Lease<'_> {
    pub(super) fn target(&self) -> &Target {
        self.target
            .as_ref()
            .unwrap_or_else(|| unreachable!("a lease holds its target until it ends"))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(target) = self.target.take() {
            self.engine.inner.tabs_replaced.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(discard(target, self.instance.clone()));
        }
    }
}

impl Engine {
    /// The live Chromium, started (again) when there is none, it died or stopped answering,
    /// or it is due a restart.
    pub(super) async fn instance(&self) -> Result<Arc<Instance>, RenderError> {
        let mut state = self.inner.pool.state.lock().await;
        let restart_after = self.inner.cfg.restart_after;
        let due = restart_after > 0 && state.renders_on_instance >= restart_after;
        if let Some(instance) = &state.instance {
            if instance.is_alive() && !due {
                return Ok(instance.clone());
            }
        }
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(RenderError::ShuttingDown);
        }
        state.idle.clear();
        state.spares.clear();
        if let Some(old) = state.instance.take() {
            tracing::info!(
                renders = state.renders_on_instance,
                alive = old.is_alive(),
                "replacing chromium"
            );
            retire(old);
        }
        let generation = self.inner.browser_starts.fetch_add(1, Ordering::Relaxed) + 1;
        let stopped = self.inner.compositors_stopped.clone();
        let instance =
            Instance::launch(&self.inner.cfg, generation, self.inner.plan, stopped).await?;
        state.instance = Some(instance.clone());
        state.renders_on_instance = 0;
        Ok(instance)
    }

    /// The current Chromium, without starting one.
    pub(super) async fn current_instance(&self) -> Option<Arc<Instance>> {
        self.inner.pool.state.lock().await.instance.clone()
    }

    /// The current Chromium, taken out for good (shutdown).
    pub(super) async fn take_instance(&self) -> Option<Arc<Instance>> {
        let mut state = self.inner.pool.state.lock().await;
        state.idle.clear();
        state.spares.clear();
        state.instance.take()
    }

    /// A shared tab: a free one, or a new one.
    pub(super) async fn shared_target(
        &self,
        instance: &Arc<Instance>,
    ) -> Result<Lease<'_>, RenderError> {
        let reused = {
            let mut state = self.inner.pool.state.lock().await;
            state.renders_on_instance += 1;
            let mut found = None;
            while let Some(target) = state.idle.pop() {
                if target.generation == instance.generation {
                    found = Some(target);
                    break;
                }
            }
            found
        };
        let target = match reused {
            Some(target) => target,
            None => {
                let page = instance.new_shared_page().await?;
                Target::open(page, instance.generation, Kind::Shared, self.inner.fetcher.clone())
                    .await?
            }
        };
        Ok(Lease { target: Some(target), instance: instance.clone(), engine: self })
    }

    /// A fresh target: a spare if one is ready, else the next one being made, else a new one;
    /// then the spares are made up again.
    pub(super) async fn fresh_target(
        &self,
        instance: &Arc<Instance>,
    ) -> Result<Lease<'_>, RenderError> {
        let pool = &self.inner.pool;
        let spare = loop {
            // Created before looking, so that a spare made meanwhile is not missed.
            let made = pool.made.notified();
            {
                let mut state = pool.state.lock().await;
                state.spares.retain(|t| t.generation == instance.generation);
                if let Some(target) = state.spares.pop() {
                    state.renders_on_instance += 1;
                    break Some(target);
                }
                if state.making == 0 {
                    state.renders_on_instance += 1;
                    break None;
                }
            }
            made.await;
        };
        let target = match spare {
            Some(target) => target,
            None => new_fresh(instance, self.inner.fetcher.clone()).await?,
        };
        self.refill_spares(instance);
        Ok(Lease { target: Some(target), instance: instance.clone(), engine: self })
    }

    /// Makes fresh targets in the background until there are as many, ready or coming, as
    /// tabs.
    pub(super) fn refill_spares(&self, instance: &Arc<Instance>) {
        let engine = self.clone();
        let instance = instance.clone();
        tokio::spawn(async move {
            let missing = {
                let mut state = engine.inner.pool.state.lock().await;
                let have = state.spares.len() + state.making;
                let missing = engine.inner.tabs.saturating_sub(have);
                state.making += missing;
                missing
            };
            for _ in 0..missing {
                let engine = engine.clone();
                let instance = instance.clone();
                tokio::spawn(async move {
                    let made = new_fresh(&instance, engine.inner.fetcher.clone()).await;
                    let pool = &engine.inner.pool;
                    let mut state = pool.state.lock().await;
                    state.making -= 1;
                    let current = state.instance.as_ref().map(|i| i.generation);
                    let unused = match made {
                        Ok(target) if current == Some(instance.generation) => {
                            state.spares.push(target);
                            None
                        }
                        Ok(target) => Some(target),
                        Err(e) => {
                            tracing::warn!(error = %e, "no spare browser context");
                            None
                        }
                    };
                    drop(state);
                    pool.made.notify_waiters();
                    if let Some(target) = unused {
                        discard(target, instance).await;
                    }
                });
            }
        });
    }

    /// A shared tab back to the pool. A document that asked for nothing is left where it is
    /// (the next one replaces it); one that did is replaced by an empty one (which stops
    /// whatever it was still loading), or, if it loaded anything from the network, by a new
    /// blank document (so nothing it loaded is reused), before the next render may have the
    /// tab. The render's slot is held until then, so the next render never waits for a tab.
    pub(super) fn release_shared(&self, mut lease: Lease<'_>, slot: Slot) {
        let Some(target) = lease.target.take() else { return };
        let instance = lease.instance.clone();
        let engine = self.clone();
        tokio::spawn(async move {
            let reset = async {
                match target.leftovers() {
                    Leftovers::None => Ok(()),
                    Leftovers::Requested => target.empty().await,
                    Leftovers::Fetched => target.blank().await,
                }
            };
            let clean = matches!(tokio::time::timeout(CLOSE_TIMEOUT, reset).await, Ok(Ok(())));
            target.end();
            let mut state = engine.inner.pool.state.lock().await;
            let current = state.instance.as_ref().map(|i| i.generation);
            if clean && current == Some(target.generation) {
                state.idle.push(target);
            } else {
                drop(state);
                engine.inner.tabs_replaced.fetch_add(1, Ordering::Relaxed);
                discard(target, instance).await;
            }
            drop(slot);
        });
    }

    /// Shared tabs free, and spare fresh targets ready, of the current Chromium (gauges of
    /// `/metrics`).
    pub async fn ready_targets(&self) -> (usize, usize) {
        let state = self.inner.pool.state.lock().await;
        (state.idle.len(), state.spares.len())
    }

    /// The pages of the free shared tabs and of the spare fresh targets.
    #[cfg(feature = "testing")]
    pub(super) async fn ready_pages(&self) -> (Vec<chromiumoxide::Page>, Vec<chromiumoxide::Page>) {
        let state = self.inner.pool.state.lock().await;
        let pages = |targets: &[Target]| targets.iter().map(|t| t.page.clone()).collect();
        (pages(&state.idle), pages(&state.spares))
    }

    /// Waits until there is a spare fresh target per tab.
    pub(super) async fn spares_made(&self) {
        let pool = &self.inner.pool;
        loop {
            // Created before looking, so that a spare made meanwhile is not missed.
            let made = pool.made.notified();
            if pool.state.lock().await.spares.len() >= self.inner.tabs {
                return;
            }
            made.await;
        }
    }

    /// Renders so far do not count towards `--restart-after` (the warm-up's are no one's).
    pub(super) async fn forget_renders(&self) {
        self.inner.pool.state.lock().await.renders_on_instance = 0;
    }

    /// A fresh target after its render: its context disposed of, in the background.
    pub(super) fn retire_fresh(&self, mut lease: Lease<'_>) {
        if let Some(target) = lease.target.take() {
            tokio::spawn(discard(target, lease.instance.clone()));
        }
    }
}

async fn new_fresh(
    instance: &Arc<Instance>,
    fetcher: crate::net::GuardedFetcher,
) -> Result<Target, RenderError> {
    let (context, page) = instance.new_fresh_page().await?;
    match Target::open(page, instance.generation, Kind::Fresh(context.clone()), fetcher).await {
        Ok(target) => Ok(target),
        Err(e) => {
            let _ = instance.dispose(context).await;
            Err(e)
        }
    }
}

/// Closes a shared tab, or disposes of a fresh target's context. A Chromium that cannot do
/// that in time is hung: it is replaced.
async fn discard(target: Target, instance: Arc<Instance>) {
    target.end();
    let closed = match &target.kind {
        Kind::Shared => {
            let page = target.page.clone();
            matches!(tokio::time::timeout(CLOSE_TIMEOUT, page.close()).await, Ok(Ok(())))
        }
        Kind::Fresh(context) => matches!(
            tokio::time::timeout(CLOSE_TIMEOUT, instance.dispose(context.clone())).await,
            Ok(Ok(()))
        ),
    };
    if !closed && instance.is_alive() {
        instance.mark_unhealthy("a tab or browser context could not be closed in time");
    }
    drop(target);
}

/// Closes an old Chromium once the renders still using it have finished.
fn retire(old: Arc<Instance>) {
    tokio::spawn(async move {
        for _ in 0..600 {
            if Arc::strong_count(&old) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        old.close().await;
    });
}
