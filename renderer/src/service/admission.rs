//! Who gets in: the renderer's places (its tabs, guest tabs and `--queue-size`), shared so that
//! no account can take them all. A request holds a place from its arrival to its end; past
//! them it is answered 503 at once, never queued without bound.
//!
//! - jobs never take the last place: it is for a sync render (someone waits for it; a refused
//!   job is only delivered again a little later);
//! - one account holds at most all places but two (one is left for another account's job, the
//!   last for a sync render), and its jobs all but three (so its own sync render gets in while
//!   its jobs hold their share).
//!
//! Which admitted render gets a tab, and when, is the engine's scheduler's business
//! (`engine::schedule`).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tokio::sync::Notify;

/// What a place is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A sync render: may take the last place.
    Sync,
    /// A job or a group of them.
    Job,
}

/// The places; clones share them.
#[derive(Clone)]
pub struct Places {
    shared: Arc<Shared>,
}

struct Shared {
    capacity: usize,
    state: Mutex<State>,
    /// Woken whenever a place frees.
    freed: Notify,
}

#[derive(Default)]
struct State {
    held: usize,
    /// Places held by each account: all of them, and those of jobs.
    by_account: HashMap<Arc<str>, Held>,
    closed: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Held {
    all: usize,
    jobs: usize,
}

/// One request's place; freed when dropped.
pub struct Place {
    shared: Arc<Shared>,
    account: Arc<str>,
    purpose: Purpose,
}

impl Drop for Place {
    fn drop(&mut self) {
        {
            let mut state = lock(&self.shared.state);
            state.held -= 1;
            if let Some(held) = state.by_account.get_mut(&self.account) {
                held.all -= 1;
                if self.purpose == Purpose::Job {
                    held.jobs -= 1;
                }
                if held.all == 0 {
                    state.by_account.remove(&self.account);
                }
            }
        }
        self.shared.freed.notify_waiters();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Places {
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                capacity: capacity.max(1),
                state: Mutex::default(),
                freed: Notify::new(),
            }),
        }
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Most places one account may hold, and most of them for its jobs.
    fn per_account(&self) -> Held {
        let capacity = self.shared.capacity;
        Held { all: capacity.saturating_sub(2).max(1), jobs: capacity.saturating_sub(3).max(1) }
    }

    /// Most places one account's jobs may hold.
    pub fn jobs_per_account(&self) -> usize {
        self.per_account().jobs
    }

    /// A place for `account`'s request, if the rules leave one.
    pub fn admit(&self, account: &str, purpose: Purpose) -> Option<Place> {
        let mut state = lock(&self.shared.state);
        let mine = state.by_account.get(account).copied().unwrap_or_default();
        let most = self.per_account();
        let job = purpose == Purpose::Job;
        let reserve = usize::from(job && self.shared.capacity > 1);
        let fits = !state.closed
            && state.held + reserve < self.shared.capacity
            && mine.all < most.all
            && !(job && mine.jobs >= most.jobs);
        if !fits {
            return None;
        }
        state.held += 1;
        let account: Arc<str> = Arc::from(account);
        let held = state.by_account.entry(account.clone()).or_default();
        held.all += 1;
        held.jobs += usize::from(job);
        Some(Place { shared: self.shared.clone(), account, purpose })
    }

    /// A job's place once the rules leave one (pull mode: the job is leased already, so it
    /// waits rather than being refused); `None` once closed.
    pub async fn admit_waiting(&self, account: &str) -> Option<Place> {
        loop {
            let freed = self.shared.freed.notified();
            if let Some(place) = self.admit(account, Purpose::Job) {
                return Some(place);
            }
            if lock(&self.shared.state).closed {
                return None;
            }
            freed.await;
        }
    }

    /// Places free for jobs (the last one kept for a sync render).
    pub fn free_for_jobs(&self) -> usize {
        let held = lock(&self.shared.state).held;
        let reserve = usize::from(self.shared.capacity > 1);
        self.shared.capacity.saturating_sub(held + reserve)
    }

    pub fn in_use(&self) -> usize {
        lock(&self.shared.state).held
    }

    /// Admits nobody from now on; those waiting give up.
    pub fn close(&self) {
        lock(&self.shared.state).closed = true;
        self.shared.freed.notify_waiters();
    }

    /// Resolves once no place is held.
    pub async fn drained(&self) {
        loop {
            let freed = self.shared.freed.notified();
            if self.in_use() == 0 {
                return;
            }
            freed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn one_account_leaves_a_place_for_another_s_job_and_one_for_a_sync_render() {
        let places = Places::new(7);
        let a: Vec<Place> = (0..5).map(|_| places.admit("a", Purpose::Sync).unwrap()).collect();
        assert!(places.admit("a", Purpose::Sync).is_none(), "a holds all places but two");
        assert!(places.admit("a", Purpose::Job).is_none(), "jobs count too");
        let b = places.admit("b", Purpose::Job).unwrap();
        assert!(places.admit("c", Purpose::Job).is_none(), "the last place is for a sync render");
        let c = places.admit("c", Purpose::Sync).unwrap();
        assert!(places.admit("d", Purpose::Sync).is_none(), "full");
        assert_eq!((places.in_use(), places.free_for_jobs()), (7, 0));
        drop(c);
        drop(b);
        assert_eq!(places.free_for_jobs(), 1);
        drop(a);
        assert_eq!(places.in_use(), 0);
    }

    #[test]
    fn an_account_s_sync_render_gets_in_while_its_jobs_hold_their_share() {
        // What the fuzzer met: the Worker pushing one account's jobs while it asks for a PDF.
        let places = Places::new(7);
        let jobs: Vec<Place> =
            std::iter::from_fn(|| places.admit("a", Purpose::Job)).take(10).collect();
        assert_eq!(jobs.len(), 4, "an account's jobs leave three places");
        let sync = places.admit("a", Purpose::Sync).expect("its sync render gets in");
        assert!(places.admit("a", Purpose::Sync).is_none(), "all places but two are a's");
        // Still a place for another account's job, and then for a sync render.
        let b = places.admit("b", Purpose::Job).unwrap();
        let c = places.admit("c", Purpose::Sync).unwrap();
        assert!(places.admit("d", Purpose::Sync).is_none());
        drop((jobs, sync, b, c));
        assert_eq!(places.in_use(), 0);
    }

    #[test]
    fn a_renderer_of_one_place_takes_one_request_of_any_kind() {
        let places = Places::new(1);
        let job = places.admit("a", Purpose::Job).unwrap();
        assert!(places.admit("b", Purpose::Sync).is_none());
        drop(job);
        assert!(places.admit("b", Purpose::Sync).is_some());
    }

    #[tokio::test]
    async fn a_pulled_job_waits_for_its_account_s_place() {
        let places = Places::new(5);
        let a1 = places.admit("a", Purpose::Job).unwrap();
        let _a2 = places.admit("a", Purpose::Job).unwrap();
        let waiting = {
            let places = places.clone();
            tokio::spawn(async move { places.admit_waiting("a").await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "over its account's places");
        let _b = places.admit("b", Purpose::Job).unwrap();
        drop(a1);
        let _a3 = waiting.await.unwrap().unwrap();
        let closed = {
            let places = places.clone();
            tokio::spawn(async move { places.admit_waiting("a").await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        places.close();
        assert!(!closed.await.unwrap());
    }
}
