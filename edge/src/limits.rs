//! Per-account limits on `POST /pdf`: requests per minute, and async jobs in flight (started,
//! not yet ended). Over either, the answer is 429 with `Retry-After`.
//!
//! The counting is here, as plain state changed by [`Counters::handle`] and tested natively.
//! In the Worker the state of each account lives in one Durable Object (`limiter_object`),
//! which handles one request at a time: the counts are exact, unlike a read-modify-write
//! counter in KV (eventually consistent, one write per second per key), and unlike the Workers
//! Rate Limiting binding, whose limit is fixed per binding in wrangler.toml (not per account)
//! and counted per Cloudflare location, and which cannot count jobs in flight at all. The cost
//! is one call to the account's object per `POST /pdf`, and one more per new async job.
//!
//! The same object keeps the progress of the account's batches (`POST /pdf/batch`), for the
//! same reason: a batch completes when its last document ends, and documents end at once on
//! many renderers, with their events repeated and racing. Counted in one place, one request at
//! a time, each document's state moves only forward and exactly one report makes the batch
//! complete ([`BatchRequest`], [`BatchProgress`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tailpdf_shared::{limits::JOB_TTL_OPEN_SECS, ApiError, JobId, JobStatus};

use crate::{
    error::EdgeError,
    idempotency::{IdempotencyAnswer, IdempotencyRequest},
    store::StoreError,
};

/// How long a job holds its slot at most: a job whose end never reached the edge frees it
/// then. Longer than any job lives (push mode gives up after `RENDER_MAX_ATTEMPTS` deliveries
/// minutes apart; the job's own keys expire after a day).
pub const SLOT_TTL_MS: u64 = 6 * 3600 * 1000;

/// `Retry-After` when every slot is taken: when a job ends cannot be known, and renders take
/// seconds.
pub const SLOT_RETRY_AFTER_SECS: u32 = 5;

/// What the edge asks an account's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum LimitRequest {
    /// Counts one `POST /pdf` against `per_minute`.
    Request { per_minute: u32 },
    /// Takes a slot for a new async job (again for the same job: no second slot).
    StartJob { job_id: JobId, in_flight: u32 },
    /// Frees the job's slot (again: nothing).
    EndJob { job_id: JobId },
}

/// The counters' answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum LimitAnswer {
    Allowed,
    /// Over the limit: the request may be made again after this many seconds.
    Limited {
        retry_after_secs: u32,
    },
}

/// One account's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Generic cell rate algorithm: the time, in µs, at which the account's requests would
    /// have been spread evenly; a request is let through while that is at most a minute ahead.
    /// One number, exact, with no window edges to burst across.
    #[serde(default)]
    tat_us: u64,
    /// Jobs holding a slot → when the slot expires (ms).
    #[serde(default)]
    jobs: BTreeMap<JobId, u64>,
    /// Batches whose progress is kept (each under its own key, [`BatchProgress`]) → when it
    /// expires (ms): what to delete, without listing the object's storage.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    batches: BTreeMap<JobId, u64>,
}

impl Counters {
    /// Applies `request` at `now_ms` (the object's own clock).
    pub fn handle(&mut self, request: &LimitRequest, now_ms: u64) -> LimitAnswer {
        match request {
            LimitRequest::Request { per_minute } => self.request(*per_minute, now_ms),
            LimitRequest::StartJob { job_id, in_flight } => {
                self.start_job(job_id, *in_flight, now_ms)
            }
            LimitRequest::EndJob { job_id } => {
                self.jobs.remove(job_id);
                LimitAnswer::Allowed
            }
        }
    }

    fn request(&mut self, per_minute: u32, now_ms: u64) -> LimitAnswer {
        if per_minute == 0 {
            return LimitAnswer::Allowed;
        }
        const MINUTE_US: u64 = 60_000_000;
        let now = now_ms * 1000;
        let interval = MINUTE_US / u64::from(per_minute);
        let tat = self.tat_us.max(now) + interval;
        let ahead = tat - now;
        // A full minute's worth may come at once: `per_minute` intervals fit in the minute.
        let tolerance = interval * u64::from(per_minute);
        if ahead > tolerance {
            return LimitAnswer::Limited { retry_after_secs: secs_ceil(ahead - tolerance) };
        }
        self.tat_us = tat;
        LimitAnswer::Allowed
    }

    fn start_job(&mut self, job_id: &JobId, in_flight: u32, now_ms: u64) -> LimitAnswer {
        self.jobs.retain(|_, expires| *expires > now_ms);
        if self.jobs.contains_key(job_id) {
            return LimitAnswer::Allowed;
        }
        if in_flight != 0 && self.jobs.len() >= in_flight as usize {
            return LimitAnswer::Limited { retry_after_secs: SLOT_RETRY_AFTER_SECS };
        }
        self.jobs.insert(job_id.clone(), now_ms + SLOT_TTL_MS);
        LimitAnswer::Allowed
    }
}

/// How long a batch's progress is kept at most: as long as its open jobs' keys.
pub const BATCH_TTL_MS: u64 = JOB_TTL_OPEN_SECS * 1000;

/// What the edge asks about an account's batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum BatchRequest {
    /// A new batch of `total` documents, all pending (again for the same batch: nothing).
    Start { batch_id: JobId, total: u32 },
    /// Document `index` is now in `status`: recorded if it moves the document forward. The
    /// batch is kept `done_ttl_secs` after it completes (the ended jobs' TTL).
    Progress { batch_id: JobId, index: u32, status: JobStatus, done_ttl_secs: u64 },
    /// The batch as it stands.
    Status { batch_id: JobId },
}

impl BatchRequest {
    pub fn batch_id(&self) -> &JobId {
        match self {
            Self::Start { batch_id, .. }
            | Self::Progress { batch_id, .. }
            | Self::Status { batch_id } => batch_id,
        }
    }
}

/// One batch's progress: a character per document, kept by the object under its own key so
/// that a report reads and writes a few hundred bytes, not every batch of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchProgress {
    /// Each document's state in order, one character each ([`state_char`]).
    states: String,
    created_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    completed_ms: Option<u64>,
    expires_ms: u64,
}

/// The batch as the object answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSnapshot {
    /// Each document's state in order, one character each ([`BatchSnapshot::statuses`]).
    pub states: String,
    pub created_ms: u64,
    /// When the last document ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_ms: Option<u64>,
    /// This very request made every document terminal: true for exactly one request.
    #[serde(default)]
    pub completed_now: bool,
}

impl BatchSnapshot {
    /// Each document's state, in order.
    pub fn statuses(&self) -> impl Iterator<Item = JobStatus> + '_ {
        self.states.chars().map(char_state)
    }

    pub fn is_complete(&self) -> bool {
        self.completed_ms.is_some()
    }
}

/// What the object does for a [`BatchRequest`]: the answer (`None`: no such batch, or
/// expired), and the batches whose kept progress expired (their keys to delete).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub answer: Option<BatchSnapshot>,
    pub expired: Vec<JobId>,
}

/// A state as one character.
pub fn state_char(status: JobStatus) -> char {
    match status {
        JobStatus::Pending => 'p',
        JobStatus::Processing => 'r',
        JobStatus::Uploading => 'u',
        JobStatus::Completed => 'c',
        JobStatus::Failed => 'f',
    }
}

fn char_state(c: char) -> JobStatus {
    match c {
        'r' => JobStatus::Processing,
        'u' => JobStatus::Uploading,
        'c' => JobStatus::Completed,
        'f' => JobStatus::Failed,
        _ => JobStatus::Pending,
    }
}

impl Counters {
    /// Applies `request` at `now_ms` to `progress`, the kept progress of
    /// `request.batch_id()` (the caller loads it before and stores it after: `None` deletes).
    pub fn handle_batch(
        &mut self,
        request: &BatchRequest,
        progress: &mut Option<BatchProgress>,
        now_ms: u64,
    ) -> BatchOutcome {
        let expired: Vec<JobId> =
            self.batches.iter().filter(|(_, e)| **e <= now_ms).map(|(id, _)| id.clone()).collect();
        for id in &expired {
            self.batches.remove(id);
        }
        if progress.as_ref().is_some_and(|p| p.expires_ms <= now_ms) {
            *progress = None;
        }
        let batch_id = request.batch_id();
        let mut completed_now = false;
        match request {
            BatchRequest::Start { total, .. } => {
                if progress.is_none() {
                    let states =
                        std::iter::repeat_n(state_char(JobStatus::Pending), *total as usize);
                    *progress = Some(BatchProgress {
                        states: states.collect(),
                        created_ms: now_ms,
                        completed_ms: None,
                        expires_ms: now_ms + BATCH_TTL_MS,
                    });
                }
            }
            BatchRequest::Progress { index, status, done_ttl_secs, .. } => {
                if let Some(p) = progress.as_mut() {
                    completed_now = p.advance(*index as usize, *status, now_ms, *done_ttl_secs);
                }
            }
            BatchRequest::Status { .. } => {}
        }
        match progress {
            Some(p) => {
                self.batches.insert(batch_id.clone(), p.expires_ms);
            }
            None => {
                self.batches.remove(batch_id);
            }
        }
        let answer = progress.as_ref().map(|p| BatchSnapshot {
            states: p.states.clone(),
            created_ms: p.created_ms,
            completed_ms: p.completed_ms,
            completed_now,
        });
        BatchOutcome { answer, expired }
    }
}

impl BatchProgress {
    /// Moves document `index` forward to `status`; true when that made every document
    /// terminal for the first time.
    fn advance(
        &mut self,
        index: usize,
        status: JobStatus,
        now_ms: u64,
        done_ttl_secs: u64,
    ) -> bool {
        let Some(current) = self.states.chars().nth(index).map(char_state) else {
            return false;
        };
        if status.rank() <= current.rank() {
            return false;
        }
        // One ASCII character per document: the index is the byte offset.
        let c = state_char(status).to_string();
        self.states.replace_range(index..=index, &c);
        if self.completed_ms.is_some() || !self.states.chars().all(|c| char_state(c).is_terminal())
        {
            return false;
        }
        self.completed_ms = Some(now_ms);
        // Readable for as long as its ended jobs, then gone.
        self.expires_ms = self.expires_ms.min(now_ms + done_ttl_secs.saturating_mul(1000));
        true
    }
}

fn secs_ceil(us: u64) -> u32 {
    u32::try_from(us.div_ceil(1_000_000)).unwrap_or(u32::MAX).max(1)
}

/// The accounts' counters, as the edge reaches them (a Durable Object per account in the
/// Worker).
#[allow(async_fn_in_trait)]
pub trait Limiter {
    async fn ask(&self, account: &str, request: &LimitRequest) -> Result<LimitAnswer, StoreError>;
    /// [`Admit`]'s steps, decided together: the account's object takes it as one request.
    async fn admit(&self, account: &str, admit: &Admit) -> Result<Admitted, StoreError> {
        admit_in_turn(self, account, admit).await
    }
    /// The account's batch progress: `None` for a batch it does not know (or no longer).
    async fn batch(
        &self,
        account: &str,
        request: &BatchRequest,
    ) -> Result<Option<BatchSnapshot>, StoreError>;
    /// The account's `Idempotency-Key`s (crate::idempotency).
    async fn idempotency(
        &self,
        account: &str,
        request: &IdempotencyRequest,
    ) -> Result<IdempotencyAnswer, StoreError>;
}

/// What a submission asks the account's object before it makes anything, in one request:
/// count the request, claim its `Idempotency-Key`, take the new job's slot among the jobs in
/// flight; each step only if the one before let it through, and a claim whose slot is refused
/// released. One round trip instead of three, and the three decided with nothing in between.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admit {
    /// Requests per minute (0: not counted).
    pub per_minute: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<IdempotencyRequest>,
    /// The new job's slot ([`LimitRequest::StartJob`]); none when it takes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<LimitRequest>,
}

/// What each step of an [`Admit`] that ran answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admitted {
    pub request: LimitAnswer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<IdempotencyAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<LimitAnswer>,
}

/// [`Admit`]'s steps in turn on `limiter`: how the account's object runs it on its own state.
pub async fn admit_in_turn(
    limiter: &(impl Limiter + ?Sized),
    account: &str,
    admit: &Admit,
) -> Result<Admitted, StoreError> {
    let request = match admit.per_minute {
        0 => LimitAnswer::Allowed,
        per_minute => limiter.ask(account, &LimitRequest::Request { per_minute }).await?,
    };
    let mut admitted = Admitted { request, claim: None, slot: None };
    if request != LimitAnswer::Allowed {
        return Ok(admitted);
    }
    if let Some(claim) = &admit.claim {
        let answer = limiter.idempotency(account, claim).await?;
        admitted.claim = Some(answer.clone());
        if answer != IdempotencyAnswer::Claimed {
            return Ok(admitted);
        }
    }
    if let Some(start) = &admit.start {
        let slot = limiter.ask(account, start).await?;
        if let (LimitAnswer::Limited { .. }, Some(claim)) = (slot, &admit.claim) {
            limiter.idempotency(account, &claim.released()).await?;
        }
        admitted.slot = Some(slot);
    }
    Ok(admitted)
}

/// The 429 for `answer`, if it is one. When the counters cannot be reached the request goes
/// through: the limits protect capacity, and their outage must not take the API down with it.
pub(crate) fn check(
    answer: Result<LimitAnswer, StoreError>,
    message: impl FnOnce(u32) -> String,
) -> Result<(), EdgeError> {
    match answer {
        Ok(LimitAnswer::Limited { retry_after_secs }) => {
            Err(ApiError::rate_limited(message(retry_after_secs), retry_after_secs).into())
        }
        Ok(LimitAnswer::Allowed) | Err(_) => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::{cell::RefCell, collections::HashMap};

    use super::*;

    /// The counters of every account, in memory, on a clock the test moves.
    #[derive(Default)]
    pub(crate) struct MemoryLimiter {
        pub counters: RefCell<HashMap<String, Counters>>,
        /// Each account's batches, as the object keeps them (a key each).
        pub batches: RefCell<HashMap<(String, JobId), BatchProgress>>,
        pub now_ms: std::cell::Cell<u64>,
        pub down: std::cell::Cell<bool>,
        /// Each account's idempotency keys, as the object keeps them.
        pub keys: RefCell<HashMap<(String, String), crate::idempotency::Entry>>,
    }

    impl Limiter for MemoryLimiter {
        async fn ask(
            &self,
            account: &str,
            request: &LimitRequest,
        ) -> Result<LimitAnswer, StoreError> {
            if self.down.get() {
                return Err(StoreError("the limiter is down".into()));
            }
            let mut all = self.counters.borrow_mut();
            Ok(all.entry(account.to_owned()).or_default().handle(request, self.now_ms.get()))
        }

        async fn batch(
            &self,
            account: &str,
            request: &BatchRequest,
        ) -> Result<Option<BatchSnapshot>, StoreError> {
            if self.down.get() {
                return Err(StoreError("the limiter is down".into()));
            }
            let mut all = self.counters.borrow_mut();
            let counters = all.entry(account.to_owned()).or_default();
            let mut batches = self.batches.borrow_mut();
            let key = (account.to_owned(), request.batch_id().clone());
            let mut progress = batches.get(&key).cloned();
            let outcome = counters.handle_batch(request, &mut progress, self.now_ms.get());
            match progress {
                Some(p) => batches.insert(key, p),
                None => batches.remove(&key),
            };
            for id in outcome.expired {
                batches.remove(&(account.to_owned(), id));
            }
            Ok(outcome.answer)
        }

        async fn idempotency(
            &self,
            account: &str,
            request: &IdempotencyRequest,
        ) -> Result<IdempotencyAnswer, StoreError> {
            use crate::idempotency::{decide, Change};
            if self.down.get() {
                return Err(StoreError("the limiter is down".into()));
            }
            let mut keys = self.keys.borrow_mut();
            let key = (account.to_owned(), request.key_sha256().to_owned());
            let (answer, change) = decide(keys.get(&key), request, self.now_ms.get());
            match change {
                Change::Keep => {}
                Change::Put(entry) => {
                    keys.insert(key, entry);
                }
                Change::Delete => {
                    keys.remove(&key);
                }
            }
            Ok(answer)
        }
    }

    fn job(n: u64) -> JobId {
        JobId::from_parts(1_700_000_000_000, u128::from(n))
    }

    #[test]
    fn an_admission_runs_its_steps_in_turn_and_releases_a_claim_whose_slot_is_refused() {
        use crate::idempotency::IdempotencyRecord;
        let claim = |n: u64| IdempotencyRequest::Claim {
            key_sha256: format!("k{n}"),
            record: IdempotencyRecord {
                job_id: Some(job(n)),
                body_sha256: "b".into(),
                ..Default::default()
            },
        };
        let admit = |n: u64, per_minute: u32, in_flight: u32| Admit {
            per_minute,
            claim: Some(claim(n)),
            start: Some(LimitRequest::StartJob { job_id: job(n), in_flight }),
        };
        futures::executor::block_on(async {
            let limiter = MemoryLimiter::default();
            // Claimed, and its slot taken: the one slot there is.
            let a = limiter.admit("a", &admit(1, 0, 1)).await.unwrap();
            assert_eq!(a.claim, Some(IdempotencyAnswer::Claimed));
            assert_eq!(a.slot, Some(LimitAnswer::Allowed));
            // No slot left: refused, and its key is free again for the client's retry.
            let b = limiter.admit("a", &admit(2, 0, 1)).await.unwrap();
            assert!(matches!(b.slot, Some(LimitAnswer::Limited { .. })), "{b:?}");
            let again = limiter.idempotency("a", &claim(2)).await.unwrap();
            assert_eq!(again, IdempotencyAnswer::Claimed, "released with the refused slot");
            // Over the requests per minute: neither the key claimed nor a slot asked for.
            let c = limiter.admit("b", &admit(3, 1, 5)).await.unwrap();
            assert_eq!((c.request, c.slot.is_some()), (LimitAnswer::Allowed, true));
            let d = limiter.admit("b", &admit(4, 1, 5)).await.unwrap();
            assert!(matches!(d.request, LimitAnswer::Limited { .. }));
            assert_eq!((d.claim, d.slot), (None, None));
            assert_eq!(
                limiter.idempotency("b", &claim(4)).await.unwrap(),
                IdempotencyAnswer::Claimed
            );
            // A key seen before (here: still claimed) takes no slot.
            let e = limiter.admit("b", &Admit { per_minute: 0, ..admit(3, 0, 5) }).await.unwrap();
            assert!(matches!(e.claim, Some(IdempotencyAnswer::InProgress { .. })), "{e:?}");
            assert_eq!(e.slot, None);
        });
    }

    #[test]
    fn a_minute_s_worth_at_once_then_one_per_interval() {
        let mut c = Counters::default();
        let t0 = 1_000_000;
        let req = LimitRequest::Request { per_minute: 30 };
        for i in 0..30 {
            assert_eq!(c.handle(&req, t0), LimitAnswer::Allowed, "request {i} of the burst");
        }
        // The 31st waits for one interval (2 s) to pass.
        assert_eq!(c.handle(&req, t0), LimitAnswer::Limited { retry_after_secs: 2 });
        assert_eq!(c.handle(&req, t0 + 1_500), LimitAnswer::Limited { retry_after_secs: 1 });
        assert_eq!(c.handle(&req, t0 + 2_000), LimitAnswer::Allowed);
        assert_eq!(c.handle(&req, t0 + 2_000), LimitAnswer::Limited { retry_after_secs: 2 });
        // A refused request costs nothing: after a quiet minute the whole burst is back.
        for i in 0..30 {
            assert_eq!(c.handle(&req, t0 + 62_000), LimitAnswer::Allowed, "request {i}");
        }
    }

    #[test]
    fn no_limit_and_a_limit_above_the_clock_s_resolution() {
        let mut c = Counters::default();
        for _ in 0..10_000 {
            assert_eq!(c.handle(&LimitRequest::Request { per_minute: 0 }, 5), LimitAnswer::Allowed);
        }
        // 120,000 a minute: an interval under the clock's millisecond still counts.
        let req = LimitRequest::Request { per_minute: 120_000 };
        let allowed = (0..200_000).filter(|_| c.handle(&req, 5) == LimitAnswer::Allowed).count();
        assert_eq!(allowed, 120_000);
    }

    #[test]
    fn jobs_in_flight_take_and_free_slots() {
        let mut c = Counters::default();
        let start = |j| LimitRequest::StartJob { job_id: job(j), in_flight: 2 };
        assert_eq!(c.handle(&start(1), 0), LimitAnswer::Allowed);
        assert_eq!(c.handle(&start(1), 0), LimitAnswer::Allowed, "the same job: no new slot");
        assert_eq!(c.handle(&start(2), 0), LimitAnswer::Allowed);
        assert_eq!(
            c.handle(&start(3), 0),
            LimitAnswer::Limited { retry_after_secs: SLOT_RETRY_AFTER_SECS }
        );
        assert_eq!(c.handle(&LimitRequest::EndJob { job_id: job(1) }, 1), LimitAnswer::Allowed);
        assert_eq!(c.handle(&LimitRequest::EndJob { job_id: job(1) }, 1), LimitAnswer::Allowed);
        assert_eq!(c.handle(&start(3), 1), LimitAnswer::Allowed);
        assert_eq!(c.jobs.len(), 2);
        // A slot whose end never came expires.
        assert_eq!(c.handle(&start(4), SLOT_TTL_MS + 1), LimitAnswer::Allowed);
        assert_eq!(c.jobs.len(), 1);
        let unlimited = LimitRequest::StartJob { job_id: job(9), in_flight: 0 };
        assert_eq!(c.handle(&unlimited, SLOT_TTL_MS + 1), LimitAnswer::Allowed);
    }

    fn progress(batch: u64, index: u32, status: JobStatus) -> BatchRequest {
        BatchRequest::Progress { batch_id: job(batch), index, status, done_ttl_secs: 3600 }
    }

    #[test]
    fn a_batch_completes_once_whatever_the_order_and_repeats_of_its_reports() {
        use JobStatus::*;
        let (mut c, mut kept) = (Counters::default(), None);
        let start = BatchRequest::Start { batch_id: job(1), total: 3 };
        let s = c.handle_batch(&start, &mut kept, 0).answer.unwrap();
        assert_eq!((s.states.as_str(), s.completed_now), ("ppp", false));
        // Started again (a retried submit): nothing is reset.
        c.handle_batch(&progress(1, 0, Processing), &mut kept, 1);
        assert_eq!(c.handle_batch(&start, &mut kept, 2).answer.unwrap().states, "rpp");
        let mut completions = 0;
        for (index, status) in [
            (0, Completed),
            (0, Processing), // late: never backwards
            (2, Uploading),
            (1, Failed),
            (1, Failed), // repeated
            (2, Completed),
            (2, Completed),
            (0, Failed),    // a different end for an ended document: the first stays
            (7, Completed), // no such document
        ] {
            let s = c.handle_batch(&progress(1, index, status), &mut kept, 10).answer.unwrap();
            completions += usize::from(s.completed_now);
        }
        assert_eq!(completions, 1, "exactly one report completes the batch");
        let s = c.handle_batch(&BatchRequest::Status { batch_id: job(1) }, &mut kept, 11);
        let s = s.answer.unwrap();
        assert_eq!(s.states, "cfc");
        assert_eq!(s.statuses().collect::<Vec<_>>(), [Completed, Failed, Completed]);
        assert_eq!((s.completed_ms, s.is_complete(), s.completed_now), (Some(10), true, false));
        assert_eq!(c.handle_batch(&progress(9, 0, Completed), &mut None, 11).answer, None);
    }

    #[test]
    fn batches_expire_a_day_after_they_start_or_soon_after_they_complete() {
        use JobStatus::*;
        let mut c = Counters::default();
        let (mut open, mut done) = (None, None);
        c.handle_batch(&BatchRequest::Start { batch_id: job(1), total: 1 }, &mut open, 0);
        c.handle_batch(&BatchRequest::Start { batch_id: job(2), total: 1 }, &mut done, 0);
        c.handle_batch(&progress(2, 0, Completed), &mut done, 1_000);
        assert_eq!(c.batches.len(), 2);
        // An hour after it completed, the completed one is dropped (its key to be deleted).
        let out = c.handle_batch(&BatchRequest::Status { batch_id: job(1) }, &mut open, 3_601_000);
        assert_eq!(out.expired, [job(2)]);
        assert!(out.answer.is_some());
        // A day after it started, the open one too.
        let out =
            c.handle_batch(&BatchRequest::Status { batch_id: job(1) }, &mut open, BATCH_TTL_MS);
        assert_eq!((out.answer, open), (None, None));
        assert!(c.batches.is_empty());
        // Counters written before batches existed still read.
        let old: Counters = serde_json::from_str(r#"{"tat_us":5,"jobs":{}}"#).unwrap();
        assert!(old.batches.is_empty());
        assert!(!serde_json::to_string(&old).unwrap().contains("batches"));
    }

    #[test]
    fn the_state_and_requests_survive_json() {
        let mut c = Counters::default();
        c.handle(&LimitRequest::StartJob { job_id: job(1), in_flight: 1 }, 7);
        c.handle(&LimitRequest::Request { per_minute: 1 }, 7);
        let back: Counters = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let req = LimitRequest::StartJob { job_id: job(1), in_flight: 1 };
        let text = serde_json::to_string(&req).unwrap();
        assert!(text.contains(r#""op":"start_job""#), "{text}");
        assert_eq!(serde_json::from_str::<LimitRequest>(&text).unwrap(), req);
    }
}
