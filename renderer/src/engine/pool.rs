//! Where renders run, and the lifecycle of what they run in: the current Chromium (started
//! again when it died, stopped answering or is due a restart), the shared tabs (reused, reset
//! off the latency path), spare fresh targets, one per tab (browser contexts made ahead of
//! time, so that a document that runs scripts does not wait for one to start), and the
//! contexts kept warm for accounts' next such documents ([`warm`]).

use std::{
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use tokio::sync::{Mutex, Notify};

use super::{
    browser::Instance,
    schedule::Slot,
    target::{Kind, Leftovers, Target},
    warm::{self, Warm},
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
    /// Fresh targets kept for their accounts' next documents.
    warm: Warm<Target>,
    renders_on_instance: u64,
}

/// A target checked out for one render: closed (or its context disposed of) if the render is
/// abandoned (deadline, error), so a broken or busy target is never reused.
pub(super) struct Lease<'a> {
    target: Option<Target>,
    /// Documents the target's context rendered before (a warm context's).
    renders: u32,
    /// Its account rendered a document that runs scripts lately (`Warm::returning`).
    returning: bool,
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
            let inner = self.engine.inner.clone();
            inner.tabs_replaced.fetch_add(1, Ordering::Relaxed);
            let instance = self.instance.clone();
            tokio::spawn(async move {
                // The render was abandoned: its page may still be busy (a print past its
                // deadline, in the headless shell, or a script's loop), which closing the tab
                // does not stop.
                if target.stop().await {
                    inner.pages_stopped.fetch_add(1, Ordering::Relaxed);
                }
                discard(target, instance).await;
            });
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
        state.warm.clear();
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
        state.warm.clear();
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
        Ok(self.lease(target, instance))
    }

    /// `target`, checked out of `instance`'s pool for one render.
    fn lease(&self, target: Target, instance: &Arc<Instance>) -> Lease<'_> {
        Lease {
            target: Some(target),
            instance: instance.clone(),
            engine: self,
            renders: 0,
            returning: false,
        }
    }

    /// A target for a document of `account` that runs scripts: the account's warm context if
    /// it has one, else a fresh target.
    pub(super) async fn account_target(
        &self,
        instance: &Arc<Instance>,
        account: &Arc<str>,
    ) -> Result<Lease<'_>, RenderError> {
        let (warm, returning) = {
            let mut state = self.inner.pool.state.lock().await;
            let returning = state.warm.returning(account, Instant::now());
            let warm =
                state.warm.take(account).filter(|(t, _)| t.generation == instance.generation);
            if warm.is_some() {
                state.renders_on_instance += 1;
            }
            (warm, returning)
        };
        let mut lease = match warm {
            Some((target, renders)) => {
                self.inner.warm_reuses.fetch_add(1, Ordering::Relaxed);
                let mut lease = self.lease(target, instance);
                lease.renders = renders;
                lease
            }
            None => self.fresh_target(instance).await?,
        };
        lease.returning = returning;
        Ok(lease)
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
        Ok(self.lease(target, instance))
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
                    // A long print lowered its page process for good: a new tab instead.
                    _ if target.lowered() => Err(()),
                    Leftovers::None => Ok(()),
                    Leftovers::Requested => target.empty().await.map_err(drop),
                    Leftovers::Fetched => target.blank().await.map_err(drop),
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

    /// The page processes of the free shared tabs and of the spare fresh targets.
    #[cfg(feature = "testing")]
    pub(super) async fn ready_processes(&self) -> Vec<Option<Arc<super::prints::PageProcess>>> {
        let state = self.inner.pool.state.lock().await;
        state.idle.iter().chain(&state.spares).map(Target::page_process).collect()
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

    /// A fresh target after its render for `account`: kept warm for the account's next
    /// document if the render went well, the account is returning and [`warm::keep`] allows
    /// ([`warm`]), its tab reset before the
    /// render's slot is let go (so the account's next render finds it); else its context
    /// disposed of, in the background.
    pub(super) fn release_fresh(
        &self,
        mut lease: Lease<'_>,
        slot: Slot,
        account: Arc<str>,
        render_ok: bool,
        opened_origin: bool,
    ) {
        let Some(target) = lease.target.take() else { return };
        let instance = lease.instance.clone();
        let renders = lease.renders + 1;
        let cap = self.inner.cfg.warm_contexts();
        let closing = self.inner.closing.load(Ordering::SeqCst);
        if !render_ok
            || target.lowered()
            || !lease.returning
            || cap == 0
            || closing
            || !warm::keep(renders, opened_origin)
        {
            target.end();
            drop(slot);
            tokio::spawn(discard(target, instance));
            return;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            let clean =
                matches!(tokio::time::timeout(CLOSE_TIMEOUT, target.reset()).await, Ok(Ok(())));
            target.end();
            let mut state = engine.inner.pool.state.lock().await;
            let current = state.instance.as_ref().map(|i| i.generation);
            let gone = if clean && current == Some(target.generation) {
                state.warm.put(account, target, renders, Instant::now(), cap)
            } else {
                vec![target]
            };
            drop(state);
            drop(slot);
            for target in gone {
                discard(target, instance.clone()).await;
            }
        });
    }
}

impl Pool {
    /// Takes out the warm contexts unused for [`warm::IDLE`], to be let go, with the current
    /// Chromium.
    pub(super) async fn expire_warm(&self) -> (Vec<Target>, Option<Arc<Instance>>) {
        let mut state = self.state.lock().await;
        (state.warm.expire(Instant::now(), warm::IDLE), state.instance.clone())
    }
}

impl Engine {
    /// Warm contexts kept, of the current Chromium (a gauge of `/metrics`).
    pub async fn warm_contexts(&self) -> usize {
        self.inner.pool.state.lock().await.warm.len()
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
pub(super) async fn discard(target: Target, instance: Arc<Instance>) {
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
