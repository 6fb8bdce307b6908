//! Who renders next: the tabs shared between accounts, so that none can crowd out another.
//!
//! Every render (a document, or a batch's group print) waits here for a slot, as one
//! account's, in one of three lanes: sync renders (someone waits for the answer) before the
//! account's jobs, jobs before its batch groups. The rules:
//! - up to `--tabs` renders run at once, and one account alone may use every one of them
//!   (work-conserving), up to `--account-tabs`;
//! - when every tab is busy, a render of an account with nothing running starts at once in a
//!   guest tab beyond them (up to `--guest-tabs`): a neighbour's long renders never hold it up.
//!   Likewise a sync render of an account with no sync render running, in guest tabs of their
//!   own (as many again), so that it never waits behind its own account's jobs or batch groups
//!   and can never take the place kept for another account. When a tab frees while guests run,
//!   a guest takes it over (so no new render starts in a tab until the total is back under
//!   `--tabs`, and the guest tab is free for the next account that needs one);
//! - when a slot frees, the account with the fewest renders running goes next, ties to the one
//!   served least recently (round-robin), then its highest lane, first come first served.
//!
//! Pure bookkeeping under one lock; the engine holds a [`Slot`] for the whole of a render.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::{oneshot, Notify};

use crate::error::RenderError;

/// Which of an account's waiting renders goes first: lower first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// `POST /render`: a person waits for the PDF.
    Sync = 0,
    /// A job's render (`POST /jobs`, or pulled).
    Job = 1,
    /// A batch's group print, or a batch document rendered alone.
    Batch = 2,
}

const LANES: usize = 3;

/// Whose render this is: an account (an opaque id the edge sends, never a key) and its lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requester {
    pub account: Arc<str>,
    pub lane: Lane,
}

impl Requester {
    pub fn new(account: &str, lane: Lane) -> Self {
        Self { account: Arc::from(account), lane }
    }

    /// Renders nobody in particular asked for: the CLI's, the warm-up's, tests'.
    pub fn anonymous() -> Self {
        Self::new("", Lane::Sync)
    }
}

/// How the tabs are shared (flags of `tailpdf-renderer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Renders at once in the normal course (`--tabs`).
    pub tabs: usize,
    /// Most renders of one account at once, guest tabs aside (`--account-tabs`).
    pub account_tabs: usize,
    /// Renders beyond `tabs`, for accounts that would otherwise wait behind others
    /// (`--guest-tabs`).
    pub guest_tabs: usize,
}

/// How a slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One of `--tabs`.
    Tab,
    /// Beyond them, to an account with nothing running.
    Guest,
    /// Beyond them, to a sync render of an account with no sync render running.
    SyncGuest,
}

impl Shares {
    /// The shares `--tabs`, `--account-tabs` and `--guest-tabs` set.
    pub fn of(cfg: &crate::config::EngineConfig) -> Self {
        let tabs = cfg.tabs();
        Self {
            tabs,
            account_tabs: cfg.account_tabs.unwrap_or(tabs).clamp(1, tabs),
            guest_tabs: cfg.guest_tabs,
        }
    }

    /// The tabs and the guest tabs of accounts with nothing running: what is opened ahead,
    /// and what the places are counted against.
    pub fn ahead(&self) -> usize {
        self.tabs.max(1) + self.guest_tabs
    }

    /// The most renders at once: the tabs and both kinds of guest tab.
    pub fn at_most(&self) -> usize {
        self.tabs.max(1) + 2 * self.guest_tabs
    }
}

/// A render's place among those running; the next waiting render may start once it is
/// dropped.
pub struct Slot {
    shared: Arc<Shared>,
    id: u64,
    account: Arc<str>,
    lane: Lane,
}

impl Slot {
    /// The account the render is for.
    pub(crate) fn account(&self) -> &Arc<str> {
        &self.account
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("account", &self.account).field("lane", &self.lane).finish()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (grants, idle) = {
            let mut state = self.shared.lock();
            state.release(self.id);
            if let Some(account) = state.accounts.get_mut(&self.account) {
                account.running -= 1;
                if self.lane == Lane::Sync {
                    account.running_sync -= 1;
                }
            }
            state.forget_if_idle(&self.account);
            let grants = state.dispatch(&self.shared);
            (grants, state.running == 0)
        };
        if idle {
            self.shared.idle.notify_waiters();
        }
        deliver(grants);
    }
}

/// The scheduler; clones share it.
#[derive(Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Woken whenever no render runs.
    idle: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State {
    shares: Shares,
    running: usize,
    /// How each slot running was given (guests may take over a tab).
    kinds: HashMap<u64, Kind>,
    /// Guest slots of each kind running.
    guests: usize,
    sync_guests: usize,
    waiting: usize,
    accounts: HashMap<Arc<str>, Account>,
    /// Ticks once per slot given: when each account was last served.
    served: u64,
    /// Ticks once per account that comes.
    arrivals: u64,
    closed: bool,
}

#[derive(Default)]
struct Account {
    running: usize,
    running_sync: usize,
    lanes: [VecDeque<oneshot::Sender<Slot>>; LANES],
    /// When it was last given a slot (0: never, since it came).
    last_served: u64,
    /// When it came: accounts never served go in the order they came.
    arrived: u64,
}

impl Account {
    fn next_lane(&self) -> Option<Lane> {
        const ORDER: [Lane; LANES] = [Lane::Sync, Lane::Job, Lane::Batch];
        self.lanes.iter().position(|l| !l.is_empty()).map(|i| ORDER[i])
    }

    fn waiting(&self) -> usize {
        self.lanes.iter().map(VecDeque::len).sum()
    }
}

/// What the scheduler holds now (gauges of `/metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// Renders running, guest tabs included.
    pub running: usize,
    /// Renders waiting for a slot.
    pub waiting: usize,
    /// Accounts with renders running or waiting.
    pub accounts: usize,
}

impl Scheduler {
    pub fn new(shares: Shares) -> Self {
        let shares = Shares {
            tabs: shares.tabs.max(1),
            account_tabs: shares.account_tabs.max(1),
            guest_tabs: shares.guest_tabs,
        };
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    shares,
                    running: 0,
                    kinds: HashMap::new(),
                    guests: 0,
                    sync_guests: 0,
                    waiting: 0,
                    accounts: HashMap::new(),
                    served: 0,
                    arrivals: 0,
                    closed: false,
                }),
                idle: Notify::new(),
            }),
        }
    }

    pub fn shares(&self) -> Shares {
        self.shared.lock().shares
    }

    /// A slot for `who`, once the rules give it one. Dropping the future gives up its turn.
    pub async fn acquire(&self, who: &Requester) -> Result<Slot, RenderError> {
        let (tx, rx) = oneshot::channel();
        let grants = {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(RenderError::ShuttingDown);
            }
            if !state.accounts.contains_key(&who.account) {
                state.arrivals += 1;
                let account = Account { arrived: state.arrivals, ..Account::default() };
                state.accounts.insert(who.account.clone(), account);
            }
            let account = state.accounts.get_mut(&who.account).unwrap_or_else(|| unreachable!());
            account.lanes[who.lane as usize].push_back(tx);
            state.waiting += 1;
            state.dispatch(&self.shared)
        };
        deliver(grants);
        rx.await.map_err(|_| RenderError::ShuttingDown)
    }

    pub fn load(&self) -> Load {
        let state = self.shared.lock();
        Load { running: state.running, waiting: state.waiting, accounts: state.accounts.len() }
    }

    /// Takes no more renders: those waiting fail as shutting down.
    pub fn close(&self) {
        let waiters: Vec<_> = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.waiting = 0;
            let mut waiters = Vec::new();
            for account in state.accounts.values_mut() {
                for lane in &mut account.lanes {
                    waiters.extend(lane.drain(..));
                }
            }
            waiters
        };
        // Dropped outside the lock: each waiter wakes with an error.
        drop(waiters);
    }

    /// Resolves once no render runs.
    pub async fn idle(&self) {
        loop {
            let notified = self.shared.idle.notified();
            if self.shared.lock().running == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl State {
    /// Gives slots to waiting renders while the rules allow; returns them to deliver once the
    /// lock is released.
    fn dispatch(&mut self, shared: &Arc<Shared>) -> Vec<(oneshot::Sender<Slot>, Slot)> {
        let mut grants = Vec::new();
        while let Some((name, kind)) = self.next_account() {
            let Some(account) = self.accounts.get_mut(&name) else { break };
            let Some(lane) = account.next_lane() else { break };
            let Some(tx) = account.lanes[lane as usize].pop_front() else { break };
            self.waiting -= 1;
            if tx.is_closed() {
                // Its render gave up waiting.
                self.forget_if_idle(&name);
                continue;
            }
            self.served += 1;
            account.running += 1;
            account.last_served = self.served;
            if lane == Lane::Sync {
                account.running_sync += 1;
            }
            self.running += 1;
            match kind {
                Kind::Tab => {}
                Kind::Guest => self.guests += 1,
                Kind::SyncGuest => self.sync_guests += 1,
            }
            let id = self.served;
            self.kinds.insert(id, kind);
            grants.push((tx, Slot { shared: shared.clone(), id, account: name, lane }));
        }
        grants
    }

    /// The account whose waiting render may start now and goes first (fewest running, then
    /// served least recently), and how.
    fn next_account(&self) -> Option<(Arc<str>, Kind)> {
        self.accounts
            .iter()
            .filter_map(|(name, a)| Some((name, a, self.may_start(a)?)))
            .min_by_key(|(_, a, _)| (a.running, a.last_served, a.arrived))
            .map(|(name, _, kind)| (name.clone(), kind))
    }

    /// How the next render of `account` may start now, if it may.
    fn may_start(&self, account: &Account) -> Option<Kind> {
        let shares = self.shares;
        let lane = account.next_lane()?;
        if self.running < shares.tabs && account.running < shares.account_tabs {
            Some(Kind::Tab)
        } else if account.running == 0 && self.guests < shares.guest_tabs {
            Some(Kind::Guest)
        } else if lane == Lane::Sync
            && account.running_sync == 0
            && self.sync_guests < shares.guest_tabs
        {
            Some(Kind::SyncGuest)
        } else {
            None
        }
    }

    /// A slot ends; a guest takes over a tab it frees.
    fn release(&mut self, id: u64) {
        self.running -= 1;
        match self.kinds.remove(&id) {
            Some(Kind::Guest) => self.guests -= 1,
            Some(Kind::SyncGuest) => self.sync_guests -= 1,
            Some(Kind::Tab) | None => {
                // A guest of an account with nothing else running first: its guest tab is
                // the one other accounts need.
                let guest = [Kind::Guest, Kind::SyncGuest].into_iter().find_map(|kind| {
                    self.kinds.iter().find(|(_, k)| **k == kind).map(|(id, k)| (*id, *k))
                });
                if let Some((id, kind)) = guest {
                    self.kinds.insert(id, Kind::Tab);
                    match kind {
                        Kind::Guest => self.guests -= 1,
                        _ => self.sync_guests -= 1,
                    }
                }
            }
        }
    }

    fn forget_if_idle(&mut self, name: &str) {
        if self.accounts.get(name).is_some_and(|a| a.running == 0 && a.waiting() == 0) {
            self.accounts.remove(name);
        }
    }
}

/// Hands each slot to its render; one whose render gave up meanwhile is dropped, which frees
/// it for the next.
fn deliver(grants: Vec<(oneshot::Sender<Slot>, Slot)>) {
    for (tx, slot) in grants {
        let _ = tx.send(slot);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn shares(tabs: usize, account_tabs: usize, guest_tabs: usize) -> Scheduler {
        Scheduler::new(Shares { tabs, account_tabs, guest_tabs })
    }

    fn who(account: &str, lane: Lane) -> Requester {
        Requester::new(account, lane)
    }

    /// A render waiting for its slot, polled in the background.
    fn wait(s: &Scheduler, r: Requester) -> tokio::task::JoinHandle<Slot> {
        let s = s.clone();
        tokio::spawn(async move { s.acquire(&r).await.unwrap() })
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn one_account_alone_uses_every_tab_and_no_more() {
        let s = shares(2, 2, 1);
        let a1 = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let _a2 = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let a3 = wait(&s, who("a", Lane::Job));
        settle().await;
        assert!(!a3.is_finished(), "no guest tab for an account already running");
        assert_eq!(s.load(), Load { running: 2, waiting: 1, accounts: 1 });
        drop(a1);
        a3.await.unwrap();
    }

    #[tokio::test]
    async fn another_account_starts_at_once_in_a_guest_tab() {
        let s = shares(2, 2, 1);
        let a1 = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let _a2 = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let a3 = wait(&s, who("a", Lane::Job));
        let b = s.acquire(&who("b", Lane::Job)).await.unwrap();
        assert_eq!(s.load().running, 3);
        // A third account waits for the guest tab: one render of someone else's.
        let c = wait(&s, who("c", Lane::Job));
        settle().await;
        assert!(!c.is_finished());
        // A tab of `a` frees: `b` takes it over, and `c`, with nothing running, takes the guest
        // tab; no new render of a busy account starts while over --tabs.
        drop(a1);
        let c = c.await.unwrap();
        settle().await;
        assert!(!a3.is_finished(), "a third render of a busy account while over --tabs");
        drop(b);
        settle().await;
        assert!(!a3.is_finished(), "a and c run: --tabs are taken");
        drop(c);
        a3.await.unwrap();
    }

    /// The order in which `queued` (each waiting in turn) are served once `first` is dropped,
    /// each holding its slot a moment.
    async fn served(s: &Scheduler, first: Slot, queued: &[Requester]) -> Vec<Requester> {
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for r in queued {
            let (s, order, r) = (s.clone(), order.clone(), r.clone());
            waiting.push(tokio::spawn(async move {
                let slot = s.acquire(&r).await.unwrap();
                order.lock().unwrap().push(r);
                settle().await;
                drop(slot);
            }));
            settle().await;
        }
        drop(first);
        for w in waiting {
            w.await.unwrap();
        }
        Arc::try_unwrap(order).unwrap().into_inner().unwrap()
    }

    #[tokio::test]
    async fn freed_slots_go_round_robin_to_the_account_with_fewest_running() {
        let s = shares(1, 1, 0);
        let first = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let queued = ["a", "a", "a", "b", "b", "c"].map(|a| who(a, Lane::Job));
        let order: Vec<String> =
            served(&s, first, &queued).await.iter().map(|r| r.account.to_string()).collect();
        // `a` was served last (its first render): b and c go before its next.
        assert_eq!(order, ["b", "c", "a", "b", "a", "a"]);
    }

    #[tokio::test]
    async fn within_an_account_sync_goes_before_jobs_and_jobs_before_batches() {
        use Lane::{Batch, Job, Sync};
        let s = shares(1, 1, 0);
        let first = s.acquire(&who("a", Batch)).await.unwrap();
        let queued = [Batch, Job, Batch, Sync, Job].map(|lane| who("a", lane));
        let order: Vec<Lane> = served(&s, first, &queued).await.iter().map(|r| r.lane).collect();
        assert_eq!(order, [Sync, Job, Job, Batch, Batch]);
    }

    #[tokio::test]
    async fn an_account_s_sync_guest_never_takes_the_guest_tab_of_another_account() {
        let s = shares(2, 2, 1);
        let _a1 = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let _a2 = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let _sync = s.acquire(&who("a", Lane::Sync)).await.unwrap();
        // `a` holds both tabs and a guest tab for its sync render: `b` still starts at once.
        let _b = s.acquire(&who("b", Lane::Job)).await.unwrap();
        assert_eq!(s.load().running, 4);
        let c = wait(&s, who("c", Lane::Sync));
        settle().await;
        assert!(!c.is_finished(), "both kinds of guest tab are taken");
    }

    #[tokio::test]
    async fn a_sync_render_never_waits_behind_its_own_account_s_batch_groups() {
        let s = shares(2, 2, 1);
        let _g1 = s.acquire(&who("a", Lane::Batch)).await.unwrap();
        let _g2 = s.acquire(&who("a", Lane::Batch)).await.unwrap();
        let g3 = wait(&s, who("a", Lane::Batch));
        let sync = s.acquire(&who("a", Lane::Sync)).await.unwrap();
        // One sync render at a time beyond the tabs: a second waits its turn.
        let sync2 = wait(&s, who("a", Lane::Sync));
        settle().await;
        assert!(!sync2.is_finished() && !g3.is_finished());
        drop(sync);
        sync2.await.unwrap();
        assert!(!g3.is_finished());
    }

    #[tokio::test]
    async fn the_per_account_cap_leaves_tabs_to_others() {
        let s = shares(3, 2, 0);
        let _a1 = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let _a2 = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let a3 = wait(&s, who("a", Lane::Job));
        settle().await;
        assert!(!a3.is_finished(), "over --account-tabs");
        let _b = s.acquire(&who("b", Lane::Job)).await.unwrap();
        assert_eq!(s.load().running, 3);
    }

    #[tokio::test]
    async fn a_render_that_gives_up_waiting_loses_its_turn_and_nothing_else() {
        let s = shares(1, 1, 0);
        let first = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let gave_up = wait(&s, who("b", Lane::Job));
        settle().await;
        gave_up.abort();
        let next = wait(&s, who("c", Lane::Job));
        settle().await;
        drop(first);
        next.await.unwrap();
        assert_eq!(s.load(), Load { running: 0, waiting: 0, accounts: 0 });
    }

    #[tokio::test]
    async fn closing_fails_those_waiting_and_idle_waits_for_those_running() {
        let s = shares(1, 1, 0);
        let running = s.acquire(&who("a", Lane::Job)).await.unwrap();
        let waiting = {
            let s = s.clone();
            tokio::spawn(async move { s.acquire(&who("b", Lane::Job)).await })
        };
        settle().await;
        s.close();
        assert!(matches!(waiting.await.unwrap(), Err(RenderError::ShuttingDown)));
        assert!(matches!(s.acquire(&who("c", Lane::Sync)).await, Err(RenderError::ShuttingDown)));
        let idle = {
            let s = s.clone();
            tokio::spawn(async move { s.idle().await })
        };
        settle().await;
        assert!(!idle.is_finished());
        drop(running);
        idle.await.unwrap();
    }
}
