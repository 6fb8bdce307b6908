//! Browser contexts kept warm for accounts: which one an account's next document that runs
//! scripts may reuse, and which are let go.
//!
//! A document that runs scripts renders in a browser context of its own. Starting one costs a
//! new page process, about half of such a render; so after a render the context may be kept,
//! its tab reset to a new blank document (a new window and a new opaque origin: no globals,
//! timers, storage or history carry over; see `Target::reset`), for the **same account's**
//! next such document. Contexts are never shared between accounts.
//!
//! A context is kept only for an account that rendered such a document within [`IDLE`] before
//! (a reset costs a navigation, wasted on an account seen once). It is not kept when its
//! document opened a frame at a real origin (whose storage, cookies and service workers would
//! live in the context), after [`MAX_RENDERS`] documents (a page process's memory grows), or
//! past [`IDLE`] unused.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::lru::ByteLru;

/// Documents one warm context renders before it is let go.
pub(crate) const MAX_RENDERS: u32 = 100;
/// How long a warm context is kept unused.
pub(crate) const IDLE: Duration = Duration::from_secs(60);
/// Accounts whose last such document is remembered.
const RECENT_ACCOUNTS: u64 = 4096;

/// Whether a context that has now rendered `renders` documents may serve its account again.
pub(crate) fn keep(renders: u32, opened_origin: bool) -> bool {
    !opened_origin && renders < MAX_RENDERS
}

/// Warm contexts (`T`: a target, in the engine), least recently used first.
pub(crate) struct Warm<T> {
    entries: Vec<Entry<T>>,
    /// When each account last rendered a document that runs scripts.
    recent: ByteLru<Arc<str>, Instant>,
}

struct Entry<T> {
    account: Arc<str>,
    item: T,
    renders: u32,
    used: Instant,
}

impl<T> Default for Warm<T> {
    fn default() -> Self {
        Self { entries: Vec::new(), recent: ByteLru::new(RECENT_ACCOUNTS) }
    }
}

impl<T> Warm<T> {
    /// Whether `account` rendered a document that runs scripts within [`IDLE`] before this
    /// one, which it notes: only then is its context worth keeping.
    pub(crate) fn returning(&mut self, account: &Arc<str>, now: Instant) -> bool {
        let last = self.recent.get(account);
        self.recent.insert(account.clone(), now, 1);
        last.is_some_and(|last| now.duration_since(last) < IDLE)
    }

    /// The account's most recently used warm context, with the documents it rendered.
    pub(crate) fn take(&mut self, account: &str) -> Option<(T, u32)> {
        let at = self.entries.iter().rposition(|e| &*e.account == account)?;
        let entry = self.entries.remove(at);
        Some((entry.item, entry.renders))
    }

    /// Keeps `item` for `account`; answers what no longer fits in `cap`, least recently used
    /// first, to be let go.
    pub(crate) fn put(
        &mut self,
        account: Arc<str>,
        item: T,
        renders: u32,
        now: Instant,
        cap: usize,
    ) -> Vec<T> {
        self.entries.push(Entry { account, item, renders, used: now });
        let over = self.entries.len().saturating_sub(cap);
        self.entries.drain(..over).map(|e| e.item).collect()
    }

    /// What was unused for `idle` or longer, to be let go.
    pub(crate) fn expire(&mut self, now: Instant, idle: Duration) -> Vec<T> {
        let (old, kept): (Vec<_>, Vec<_>) =
            self.entries.drain(..).partition(|e| now.duration_since(e.used) >= idle);
        self.entries = kept;
        old.into_iter().map(|e| e.item).collect()
    }

    /// Everything, to be let go (a new Chromium).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_only_its_own_context_most_recent_first() {
        let mut warm = Warm::default();
        let now = Instant::now();
        assert!(warm.put("a".into(), 1, 3, now, 4).is_empty());
        assert!(warm.put("b".into(), 2, 1, now, 4).is_empty());
        assert!(warm.put("a".into(), 3, 7, now, 4).is_empty());
        assert_eq!(warm.take("c"), None);
        assert_eq!(warm.take("a"), Some((3, 7)));
        assert_eq!(warm.take("a"), Some((1, 3)));
        assert_eq!(warm.take("a"), None);
        assert_eq!(warm.take("b"), Some((2, 1)));
        assert_eq!(warm.len(), 0);
    }

    #[test]
    fn only_an_account_back_within_the_idle_time_is_returning() {
        let mut warm: Warm<u8> = Warm::default();
        let start = Instant::now();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(!warm.returning(&a, start), "seen once");
        assert!(warm.returning(&a, start + Duration::from_secs(59)));
        assert!(!warm.returning(&b, start + Duration::from_secs(59)));
        assert!(!warm.returning(&a, start + Duration::from_secs(59) + IDLE), "back too late");
        assert!(warm.returning(&b, start + Duration::from_secs(60)));
    }

    #[test]
    fn beyond_the_cap_the_least_recently_used_go() {
        let mut warm = Warm::default();
        let now = Instant::now();
        assert!(warm.put("a".into(), 1, 0, now, 2).is_empty());
        assert!(warm.put("b".into(), 2, 0, now, 2).is_empty());
        assert_eq!(warm.put("c".into(), 3, 0, now, 2), vec![1]);
        assert_eq!(warm.put("d".into(), 4, 0, now, 0), vec![2, 3, 4], "cap 0 keeps nothing");
    }

    #[test]
    fn contexts_unused_for_the_idle_time_go() {
        let mut warm = Warm::default();
        let start = Instant::now();
        warm.put("a".into(), 1, 0, start, 4);
        warm.put("b".into(), 2, 0, start + Duration::from_secs(30), 4);
        assert!(warm.expire(start + Duration::from_secs(59), IDLE).is_empty());
        assert_eq!(warm.expire(start + IDLE, IDLE), vec![1]);
        assert_eq!(warm.take("b"), Some((2, 0)));
    }

    #[test]
    fn a_context_whose_document_opened_an_origin_or_rendered_enough_is_let_go() {
        assert!(keep(1, false));
        assert!(keep(MAX_RENDERS - 1, false));
        assert!(!keep(MAX_RENDERS, false));
        assert!(!keep(1, true));
    }
}
