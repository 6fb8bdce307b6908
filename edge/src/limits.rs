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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tailpdf_shared::{ApiError, JobId};

use crate::store::StoreError;

/// An account's limits: set in its KV record, else the Worker's defaults (`EdgeConfig`).
/// 0 is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `POST /pdf` requests per minute, sync or async, in bursts of up to as many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Async jobs accepted and not yet ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_in_flight: Option<u32>,
}

impl Limits {
    /// These limits where set, `defaults` elsewhere.
    pub fn or(self, defaults: Limits) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute.or(defaults.requests_per_minute),
            jobs_in_flight: self.jobs_in_flight.or(defaults.jobs_in_flight),
        }
    }
}

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

fn secs_ceil(us: u64) -> u32 {
    u32::try_from(us.div_ceil(1_000_000)).unwrap_or(u32::MAX).max(1)
}

/// The accounts' counters, as the edge reaches them (a Durable Object per account in the
/// Worker).
#[allow(async_fn_in_trait)]
pub trait Limiter {
    async fn ask(&self, account: &str, request: &LimitRequest) -> Result<LimitAnswer, StoreError>;
}

/// The 429 for `answer`, if it is one. When the counters cannot be reached the request goes
/// through: the limits protect capacity, and their outage must not take the API down with it.
pub(crate) fn check(
    answer: Result<LimitAnswer, StoreError>,
    message: impl FnOnce(u32) -> String,
) -> Result<(), ApiError> {
    match answer {
        Ok(LimitAnswer::Limited { retry_after_secs }) => {
            Err(ApiError::rate_limited(message(retry_after_secs), retry_after_secs))
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
        pub now_ms: std::cell::Cell<u64>,
        pub down: std::cell::Cell<bool>,
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
    }

    fn job(n: u64) -> JobId {
        JobId::from_parts(1_700_000_000_000, u128::from(n))
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

    #[test]
    fn an_account_s_limits_fall_back_to_the_defaults_one_by_one() {
        let defaults = Limits { requests_per_minute: Some(600), jobs_in_flight: Some(50) };
        let own = Limits { requests_per_minute: Some(0), jobs_in_flight: None };
        assert_eq!(
            own.or(defaults),
            Limits { requests_per_minute: Some(0), jobs_in_flight: Some(50) }
        );
        let record: Limits = serde_json::from_str(r#"{"jobs_in_flight":3}"#).unwrap();
        assert_eq!(record, Limits { requests_per_minute: None, jobs_in_flight: Some(3) });
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
