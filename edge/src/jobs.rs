//! Single jobs as plain functions over [`Kv`] and [`Queue`]: what `POST /pdf`,
//! `GET /jobs/{id}` and `GET /internal/jobs/{id}/spec` do, independent of the Worker runtime.
//! Their events are [`crate::events`]'; what a request goes through first, [`crate::admission`].

use tailpdf_shared::{
    batch::parse_document_job_id,
    job::{status_path, JobAccepted},
    limits::JOB_TTL_OPEN_SECS,
    messages::{RenderJobMessage, SecretUrl},
    request::validate_idempotency_key,
    Delivery, JobId, JobView, RenderSpec, Timestamp,
};

use crate::{
    admission::{
        admit, count_request, idempotency_conflict, limits, settle, Idempotency, Made, Slot,
        SubmitHeaders,
    },
    config::EdgeConfig,
    error::EdgeError,
    idempotency::IdempotencyRecord,
    limits::{LimitRequest, Limiter},
    store::{
        decode, job_key, load_job, spec_key, specs_key, Account, Entry, JobBase, Kv, Queue,
        SpecPack, WebhookRecord, SPECS_PER_PACK,
    },
};

/// What a `POST /pdf` came to, and the fields of it that were ignored (for `X-TailPDF-Ignored`).
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub submission: Submission,
    pub ignored: Vec<String>,
}

/// What a `POST /pdf` comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Submission {
    /// Render now and answer with the PDF.
    Sync(Box<RenderSpec>),
    /// A new background job (202).
    Accepted(JobAccepted),
    /// The same `Idempotency-Key` and body as before: the job made then (202).
    Replayed(JobAccepted),
}

/// `POST /pdf`. The spec is stored (by the job's object) only when it is too large to travel
/// in the queue message, and deleted when the job ends: nothing of a document outlives its
/// job. Counted against the account's requests per minute whatever the body: with the job's
/// admission when it makes one, on its own otherwise.
pub async fn submit(
    (jobs, render_jobs, limiter): (&impl Kv, &impl Queue<RenderJobMessage>, &impl Limiter),
    cfg: &EdgeConfig,
    account: &Account,
    headers: SubmitHeaders<'_>,
    body: &[u8],
    now: Timestamp,
) -> Result<Submitted, EdgeError> {
    let parsed = tailpdf_shared::parse_pdf_request(body, cfg.url_policy).and_then(|request| {
        // Checked whether or not the request makes a job: a malformed key is a client's
        // mistake.
        headers.idempotency_key.map(validate_idempotency_key).transpose()?;
        Ok(request)
    });
    let mut request = match parsed {
        // Counted by its admission.
        Ok(request) if matches!(request.delivery, Delivery::Async { .. }) => request,
        parsed => {
            count_request(limiter, cfg, account).await?;
            parsed?
        }
    };
    request.spec.no_store = headers.no_store;
    let ignored = request.ignored;
    let submission = match request.delivery {
        Delivery::Sync => Submission::Sync(Box::new(request.spec)),
        Delivery::Async { upload_url, webhook_url } => {
            let job = NewJob {
                spec: request.spec,
                upload_url: SecretUrl::new(upload_url.as_str()),
                webhook_url: webhook_url.map(|u| SecretUrl::new(u.as_str())),
            };
            let stores = (jobs, render_jobs, limiter);
            submit_job(stores, (cfg, account), headers, job, body, now).await?
        }
    };
    Ok(Submitted { submission, ignored })
}

struct NewJob {
    spec: RenderSpec,
    upload_url: SecretUrl,
    webhook_url: Option<SecretUrl>,
}

async fn submit_job(
    (jobs, render_jobs, limiter): (&impl Kv, &impl Queue<RenderJobMessage>, &impl Limiter),
    (cfg, account): (&EdgeConfig, &Account),
    headers: SubmitHeaders<'_>,
    job: NewJob,
    body: &[u8],
    now: Timestamp,
) -> Result<Submission, EdgeError> {
    let job_id = JobId::generate_at(u64::try_from(now.unix()).unwrap_or(0) * 1000);
    let key = headers.idempotency_key;
    let in_flight = limits(cfg, account).jobs_in_flight.unwrap_or(0);
    let slot = (in_flight > 0).then(|| Slot { job_id: job_id.clone(), in_flight });
    let made = Made::Job(job_id.clone());
    let idempotency = admit(limiter, (cfg, account), key, body, made, slot).await?;
    match &idempotency {
        Idempotency::Seen(IdempotencyRecord { job_id: Some(job_id), .. }) => {
            return Ok(Submission::Replayed(JobAccepted::new(job_id.clone())));
        }
        // The key made a batch: the same body cannot be a job too.
        Idempotency::Seen(_) => return Err(idempotency_conflict()),
        Idempotency::Claimed(_) | Idempotency::Without => {}
    }
    let stores = (jobs, render_jobs, limiter);
    let made = make_job(stores, account, in_flight, &headers, job, job_id, now).await;
    settle(limiter, account, idempotency, made.is_ok()).await;
    made
}

/// The job itself, its slot taken: its keys, its message.
async fn make_job(
    (jobs, render_jobs, limiter): (&impl Kv, &impl Queue<RenderJobMessage>, &impl Limiter),
    account: &Account,
    in_flight: u32,
    headers: &SubmitHeaders<'_>,
    job: NewJob,
    job_id: JobId,
    now: Timestamp,
) -> Result<Submission, EdgeError> {
    let mut message =
        RenderJobMessage::new(job_id.clone(), &account.account, job.upload_url, &job.spec);
    message.traceparent = headers.trace.map(|t| t.child().header());
    let base = JobBase {
        job_id: job_id.clone(),
        account: account.account.clone(),
        created_at: now,
        webhook_url: job.webhook_url,
        spec_stored: message.spec.is_none(),
        holds_slot: in_flight > 0,
        spec_pack: false,
        batch: None,
    };
    let queued = async {
        // One request to the job's object, the spec with it when it does not travel.
        let mut writes = vec![Entry::json(job_key(&job_id), &base, JOB_TTL_OPEN_SECS)?];
        if base.spec_stored {
            writes.push(Entry::json(spec_key(&job_id), &job.spec, JOB_TTL_OPEN_SECS)?);
        }
        jobs.put_many(&writes).await?;
        render_jobs.send(&message).await
    };
    if let Err(e) = queued.await {
        // No job: its slot is free again (or expires, should this fail too).
        if base.holds_slot {
            let _ = limiter.ask(&account.account, &LimitRequest::EndJob { job_id }).await;
        }
        return Err(e.into());
    }
    Ok(Submission::Accepted(JobAccepted::new(job_id)))
}

/// `GET /jobs/{id}`: only the owning account sees the job; an ended job for the configured
/// time after it ended.
pub async fn job_status(
    jobs: &impl Kv,
    cfg: &EdgeConfig,
    account: &Account,
    id: &str,
    now: Timestamp,
) -> Result<JobView, EdgeError> {
    let not_found = || {
        EdgeError::Unknown(format!(
            "No job {id} for this API key (jobs are kept for an hour after they end)."
        ))
    };
    let id = JobId::parse(id).map_err(|_| not_found())?;
    let job = load_job(jobs, &id, WebhookRecord::Read).await?.ok_or_else(not_found)?;
    if job.base.account != account.account || !cfg.still_kept(job.record.completed_at, now) {
        return Err(not_found());
    }
    Ok(job.record.view())
}

/// `GET /internal/jobs/{id}/spec`: `job:{id}:spec`, or a batch's document's from its pack
/// (both read at once, from the job's object: a spec not found there is gone).
pub async fn job_spec(jobs: &impl Kv, id: &str) -> Result<RenderSpec, EdgeError> {
    let id = JobId::parse(id).map_err(|_| EdgeError::Unknown("No such job.".into()))?;
    let document = parse_document_job_id(&id);
    // Read at once (one request to the job's object): its own spec, and a document's pack.
    let mut keys = vec![spec_key(&id)];
    if let Some((batch_id, index)) = &document {
        keys.push(specs_key(batch_id, index / SPECS_PER_PACK));
    }
    let values = jobs.get_many(&keys).await?;
    let value = |n: usize| values.get(n).and_then(Option::as_deref);
    if let Some(spec) = decode::<RenderSpec>(&keys[0], value(0))? {
        return Ok(spec);
    }
    let packed = match (&document, keys.get(1)) {
        (Some((_, index)), Some(key)) => {
            decode::<SpecPack>(key, value(1))?.and_then(|pack| pack.spec(*index))
        }
        _ => None,
    };
    packed.ok_or_else(|| EdgeError::Unknown("No spec for this job (ended?).".into()))
}

/// The `Location` of an accepted job.
pub fn location(accepted: &JobAccepted) -> String {
    status_path(&accepted.job_id)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{
        admission::authenticate,
        events::{apply, apply_event, gave_up, GAVE_UP_MESSAGE},
        idempotency::IdempotencyRequest,
        limits::{tests::MemoryLimiter, SLOT_RETRY_AFTER_SECS},
        store::{
            memory::{MemoryKv, MemoryQueue},
            put_json, stage_key, Limits,
        },
    };
    use sha2::{Digest, Sha256};
    use tailpdf_shared::ApiError;
    use tailpdf_shared::{
        job::RenderResult, limits::INLINE_SPEC_MAX_BYTES, signing::hash_api_key,
        trace::TraceParent, ErrorCode, JobEvent, JobStatus,
    };

    pub(crate) fn cfg() -> EdgeConfig {
        EdgeConfig::from_vars(|k| (k == "INTERNAL_SECRET").then(|| String::from("s"))).unwrap()
    }

    pub(crate) fn acct(name: &str) -> Account {
        Account {
            account: name.into(),
            webhook_secret: Some("whs".into()),
            limits: Limits::default(),
        }
    }

    /// Counters that start empty and never move their clock.
    pub(crate) fn lim() -> MemoryLimiter {
        MemoryLimiter::default()
    }

    pub(crate) fn ts(s: i64) -> Timestamp {
        Timestamp::from_unix(1_734_258_600 + s).unwrap()
    }

    const ASYNC: &str = r#"{"content":"<p>x</p>","async":true,"upload_url":"https://b.s3.amazonaws.com/a.pdf?X-Amz-Signature=abc","webhook_url":"https://api.example.com/hook"}"#;

    /// The futures here wait on nothing but memory: poll them to completion.
    pub(crate) fn run<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Waker};
        let mut f = std::pin::pin!(f);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    /// `submit` with the default config and an optional `Idempotency-Key`.
    async fn sub(
        jobs: &MemoryKv,
        queue: &MemoryQueue<RenderJobMessage>,
        account: &Account,
        idempotency_key: Option<&str>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Submission, EdgeError> {
        sub_with(&lim(), (jobs, queue), account, idempotency_key, body, now).await
    }

    /// [`sub`] with the accounts' objects of the caller's.
    async fn sub_with(
        limiter: &MemoryLimiter,
        (jobs, queue): (&MemoryKv, &MemoryQueue<RenderJobMessage>),
        account: &Account,
        idempotency_key: Option<&str>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<Submission, EdgeError> {
        let headers = SubmitHeaders { idempotency_key, no_store: false, trace: None };
        submit((jobs, queue, limiter), &cfg(), account, headers, body, now)
            .await
            .map(|s| s.submission)
    }

    #[test]
    fn the_job_s_message_carries_a_child_of_the_request_s_trace() {
        run(async {
            let (jobs, queue) = (MemoryKv::default(), MemoryQueue::default());
            let trace =
                TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                    .unwrap();
            let headers = SubmitHeaders { trace: Some(&trace), ..SubmitHeaders::default() };
            let stores = (&jobs, &queue, &lim());
            submit(stores, &cfg(), &acct("a"), headers, ASYNC.as_bytes(), ts(0)).await.unwrap();
            let sent = queue.0.borrow()[0].traceparent.clone().unwrap();
            let sent = TraceParent::parse(&sent).unwrap();
            assert_eq!(sent.trace_id(), trace.trace_id());
            assert_ne!(sent, trace, "a span of its own");
        });
    }

    fn limited(name: &str, requests_per_minute: u32, jobs_in_flight: u32) -> Account {
        let limits = Limits {
            requests_per_minute: Some(requests_per_minute),
            jobs_in_flight: Some(jobs_in_flight),
        };
        Account { limits, ..acct(name) }
    }

    const SYNC: &str = r#"{"content":"<p>x</p>"}"#;

    #[test]
    fn requests_over_an_account_s_rate_get_429_with_retry_after_and_no_other_account_does() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim());
            let c = cfg();
            let headers = SubmitHeaders::default();
            let post = |account: Account, body: &'static str| {
                let (jobs, queue, limiter, c) = (&jobs, &queue, &limiter, &c);
                async move {
                    submit((jobs, queue, limiter), c, &account, headers, body.as_bytes(), ts(0))
                        .await
                }
            };
            // Two a minute: a burst of two, whatever the request, then one every 30 s.
            assert!(post(limited("a", 2, 0), SYNC).await.is_ok());
            assert_eq!(post(limited("a", 2, 0), "not json").await.unwrap_err().status(), 400);
            let e = ApiError::from(post(limited("a", 2, 0), ASYNC).await.unwrap_err());
            assert_eq!((e.status(), e.retry_after_secs), (429, Some(30)));
            assert_eq!(e.body().error, "rate_limited");
            assert!(e.message.contains("2 requests a minute"), "{}", e.message);
            assert!(queue.0.borrow().is_empty(), "nothing queued for a refused request");
            assert!(post(limited("b", 2, 0), SYNC).await.is_ok(), "another account");
            limiter.now_ms.set(30_000);
            assert!(post(limited("a", 2, 0), ASYNC).await.is_ok(), "30 s later");
            assert_eq!(post(limited("a", 2, 0), SYNC).await.unwrap_err().status(), 429);
            // The counters out of reach: requests go through rather than fail.
            limiter.down.set(true);
            assert!(post(limited("a", 2, 0), SYNC).await.is_ok());
            // No limit set: the Worker's default applies (none, in the tests' config).
            limiter.down.set(false);
            for _ in 0..50 {
                assert!(post(acct("a"), SYNC).await.is_ok());
            }
        });
    }

    #[test]
    fn an_account_s_jobs_in_flight_are_capped_and_each_end_frees_its_slot() {
        run(async {
            let (jobs, queue, webhooks, limiter) =
                (MemoryKv::default(), MemoryQueue::default(), MemoryQueue::default(), lim());
            let c = cfg();
            let account = limited("a", 0, 2);
            let post = |key: Option<&'static str>, body: &'static str| {
                let (jobs, queue, limiter, c, account) = (&jobs, &queue, &limiter, &c, &account);
                let headers = SubmitHeaders { idempotency_key: key, no_store: false, trace: None };
                async move {
                    submit((jobs, queue, limiter), c, account, headers, body.as_bytes(), ts(0))
                        .await
                        .map(|s| s.submission)
                }
            };
            let first = match post(Some("k1"), ASYNC).await.unwrap() {
                Submission::Accepted(a) => a.job_id,
                other => panic!("{other:?}"),
            };
            assert!(matches!(post(None, ASYNC).await.unwrap(), Submission::Accepted(_)));
            let e = ApiError::from(post(None, ASYNC).await.unwrap_err());
            assert_eq!((e.status(), e.retry_after_secs), (429, Some(SLOT_RETRY_AFTER_SECS)));
            assert!(e.message.contains("2 async jobs"), "{}", e.message);
            // Neither a replay of a job in flight nor a sync render needs a slot.
            assert!(matches!(post(Some("k1"), ASYNC).await.unwrap(), Submission::Replayed(_)));
            assert!(matches!(post(None, SYNC).await.unwrap(), Submission::Sync(_)));
            assert_eq!(queue.0.borrow().len(), 2);

            let processing = event(&JobEvent::Processing { at: ts(1) });
            apply_event(&jobs, &webhooks, &limiter, &c, first.as_str(), &processing).await.unwrap();
            assert_eq!(post(None, ASYNC).await.unwrap_err().status(), 429, "not ended yet");
            let failed = event(&JobEvent::Failed { at: ts(2), error_message: "x".into() });
            apply_event(&jobs, &webhooks, &limiter, &c, first.as_str(), &failed).await.unwrap();
            assert!(matches!(post(None, ASYNC).await.unwrap(), Submission::Accepted(_)));
            assert_eq!(post(None, ASYNC).await.unwrap_err().status(), 429);
        });
    }

    #[test]
    fn a_job_without_a_slot_ends_without_asking_the_counters() {
        run(async {
            let (jobs, queue, webhooks, limiter) =
                (MemoryKv::default(), MemoryQueue::default(), MemoryQueue::default(), lim());
            let c = cfg();
            let headers = SubmitHeaders::default();
            let (stores, account) = ((&jobs, &queue, &limiter), acct("a"));
            let submitted = submit(stores, &c, &account, headers, ASYNC.as_bytes(), ts(0));
            let Submission::Accepted(accepted) = submitted.await.unwrap().submission else {
                panic!("accepted")
            };
            let done = event(&JobEvent::Completed { at: ts(1), result: RESULT });
            let id = accepted.job_id.as_str();
            apply_event(&jobs, &webhooks, &limiter, &c, id, &done).await.unwrap();
            // No limits, no slot: the account's counters were never asked (a round trip to
            // its Durable Object saved on every job's end).
            assert!(limiter.counters.borrow().is_empty());
        });
    }

    #[test]
    fn a_job_that_could_not_be_queued_gives_its_slot_back() {
        run(async {
            let (jobs, limiter) = (MemoryKv::default(), lim());
            let account = limited("a", 0, 1);
            let headers = SubmitHeaders::default();
            let body = ASYNC.as_bytes();
            let refusing = MemoryQueue::failing_first(1);
            let e = submit((&jobs, &refusing, &limiter), &cfg(), &account, headers, body, ts(0))
                .await
                .unwrap_err();
            assert_eq!(e.status(), 503);
            let accepted =
                submit((&jobs, &refusing, &limiter), &cfg(), &account, headers, body, ts(0)).await;
            assert!(matches!(accepted.unwrap().submission, Submission::Accepted(_)));
            let (webhooks, dead) = (MemoryQueue::default(), queued(&refusing));
            apply(&jobs, &webhooks, &limiter, &cfg(), &dead, &gave_up(ts(9))).await.unwrap();
            let again =
                submit((&jobs, &refusing, &limiter), &cfg(), &account, headers, body, ts(10)).await;
            assert!(again.is_ok(), "a dead-lettered job's end frees its slot too");
        });
    }

    fn queued(queue: &MemoryQueue<RenderJobMessage>) -> JobId {
        queue.0.borrow()[0].job_id.clone()
    }

    #[test]
    fn keys_are_found_by_their_hash_and_anything_else_is_401() {
        run(async {
            let keys = MemoryKv::default();
            put_json(&keys, &format!("key:{}", hash_api_key("dev-api-key")), &acct("dev"), 3600)
                .await
                .unwrap();
            assert_eq!(authenticate(&keys, Some("dev-api-key")).await.unwrap().account, "dev");
            for key in [None, Some(""), Some("wrong")] {
                let e = ApiError::from(authenticate(&keys, key).await.unwrap_err());
                assert_eq!(e.status(), 401, "{key:?}");
                assert!(e.message.contains("X-API-Key"));
            }
        });
    }

    #[test]
    fn async_submit_stores_write_once_keys_and_queues_the_job() {
        run(async {
            let (jobs, queue) = (MemoryKv::default(), MemoryQueue::default());
            let s = sub(&jobs, &queue, &acct("a"), None, ASYNC.as_bytes(), ts(0)).await.unwrap();
            let Submission::Accepted(accepted) = s else { panic!("{s:?}") };
            assert_eq!(accepted.status, JobStatus::Pending);
            assert_eq!(location(&accepted), format!("/jobs/{}", accepted.job_id));
            let id = &accepted.job_id;
            // The spec travels in the message: it is not kept anywhere else.
            assert_eq!(*jobs.writes.borrow(), [job_key(id)]);
            assert_eq!(jobs.ttl(&job_key(id)), Some(JOB_TTL_OPEN_SECS));
            // The stored base never holds the presigned upload URL.
            assert!(!jobs.get(&job_key(id)).await.unwrap().unwrap().contains("X-Amz-Signature"));
            let sent = queue.0.borrow();
            assert_eq!(sent.len(), 1);
            assert_eq!(&sent[0].job_id, id);
            assert!(sent[0].spec.is_some());
        });
    }

    #[test]
    fn sync_requests_and_invalid_bodies() {
        run(async {
            let (jobs, queue) = (MemoryKv::default(), MemoryQueue::default());
            let s = sub(&jobs, &queue, &acct("a"), None, br#"{"content":"<p>x</p>"}"#, ts(0))
                .await
                .unwrap();
            assert!(matches!(s, Submission::Sync(_)));
            let e = ApiError::from(
                sub(&jobs, &queue, &acct("a"), None, b"{", ts(0)).await.unwrap_err(),
            );
            assert_eq!((e.status(), e.code), (400, ErrorCode::InvalidJson));
            let big = vec![b' '; tailpdf_shared::limits::MAX_BODY_BYTES + 1];
            assert_eq!(
                sub(&jobs, &queue, &acct("a"), None, &big, ts(0)).await.unwrap_err().status(),
                413
            );
            assert!(jobs.writes.borrow().is_empty() && queue.0.borrow().is_empty());
        });
    }

    #[test]
    fn idempotency_keys_replay_or_conflict() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim());
            let sub = |account: &'static str, key: &'static str, body: String, at: i64| {
                let (jobs, queue, limiter) = (&jobs, &queue, &limiter);
                async move {
                    let account = acct(account);
                    sub_with(limiter, (jobs, queue), &account, Some(key), body.as_bytes(), ts(at))
                        .await
                }
            };
            let first = sub("a", "k-1", ASYNC.into(), 0).await.unwrap();
            let Submission::Accepted(first) = first else { panic!() };
            let again = sub("a", "k-1", ASYNC.into(), 1).await.unwrap();
            assert_eq!(again, Submission::Replayed(first.clone()));
            assert_eq!(queue.0.borrow().len(), 1, "no second job");
            let other = ASYNC.replace("<p>x</p>", "<p>y</p>");
            let e = ApiError::from(sub("a", "k-1", other.clone(), 2).await.unwrap_err());
            assert_eq!((e.status(), e.code), (409, ErrorCode::IdempotencyConflict));
            // Another account's key space is its own.
            let b = sub("b", "k-1", other.clone(), 3).await.unwrap();
            assert!(matches!(b, Submission::Accepted(_)));
            let e = sub("a", "has space", ASYNC.into(), 4).await.unwrap_err();
            assert_eq!(e.status(), 400);
            // A sync request has no use for the key, but one that is malformed is still a
            // client's mistake to hear about: found by the schema fuzzer.
            for key in ["", &"k".repeat(256)] {
                let e = sub_with(
                    &limiter,
                    (&jobs, &queue),
                    &acct("a"),
                    Some(key),
                    br#"{"content":"x"}"#,
                    ts(5),
                )
                .await
                .unwrap_err();
                assert_eq!(e.status(), 400, "{key:?}");
            }
        });
    }

    #[test]
    fn a_key_being_handled_is_answered_409_with_retry_after_and_a_failed_submit_frees_it() {
        run(async {
            let (jobs, limiter) = (MemoryKv::default(), lim());
            let (refused, queue) = (MemoryQueue::failing(), MemoryQueue::default());
            // Account a's POST /pdf with `key` and `body`, queued on `queue`.
            let sub = |queue, key, body: String, at| {
                let (limiter, jobs) = (&limiter, &jobs);
                async move {
                    sub_with(limiter, (jobs, queue), &acct("a"), Some(key), body.as_bytes(), ts(at))
                        .await
                }
            };
            // A request whose queue refuses the job: nothing made, the key released.
            let e = sub(&refused, "k", ASYNC.into(), 0).await.unwrap_err();
            assert_eq!(e.status(), 503);
            let ok = sub(&queue, "k", ASYNC.into(), 1).await.unwrap();
            assert!(matches!(ok, Submission::Accepted(_)), "the key was free again");
            // A claim another request holds (its Worker still at work, or dead for less than a
            // minute): the same body is told to retry, another body is a conflict.
            let claim = IdempotencyRequest::Claim {
                key_sha256: hex::encode(Sha256::digest(b"busy")),
                record: IdempotencyRecord {
                    body_sha256: hex::encode(Sha256::digest(ASYNC.as_bytes())),
                    ..IdempotencyRecord::default()
                },
            };
            limiter.idempotency("a", &claim).await.unwrap();
            let e = ApiError::from(sub(&queue, "busy", ASYNC.into(), 2).await.unwrap_err());
            assert_eq!((e.status(), e.retry_after_secs), (409, Some(1)), "{e:?}");
            let other = ASYNC.replace("<p>x</p>", "<p>y</p>");
            let e = ApiError::from(sub(&queue, "busy", other, 2).await.unwrap_err());
            assert_eq!((e.status(), e.retry_after_secs), (409, None));
            // Its object out of reach: 503, never a second job.
            limiter.down.set(true);
            let e = sub(&queue, "k", ASYNC.into(), 3).await.unwrap_err();
            assert_eq!(e.status(), 503);
            assert_eq!(queue.0.borrow().len(), 1);
        });
    }

    #[test]
    fn a_job_loads_in_one_round_of_reads_and_an_event_skips_the_webhook_record() {
        // Every event of every job loads its job: on the edge each read is a round trip.
        run(async {
            let jobs = MemoryKv::default();
            let id = submitted(&jobs).await;
            let webhooks = MemoryQueue::default();
            let reads = crate::store::memory::Reads::of(&jobs);
            apply(&reads, &webhooks, &lim(), &cfg(), &id, &JobEvent::Processing { at: ts(1) })
                .await
                .unwrap();
            let event_reads = reads.keys.borrow().clone();
            assert_eq!(event_reads.len(), 4, "{event_reads:?}");
            assert!(!event_reads.contains(&crate::store::webhook_key(&id)), "{event_reads:?}");
            assert_eq!(reads.most_at_once.get(), 4, "the four reads at once");

            let reads = crate::store::memory::Reads::of(&jobs);
            job_status(&reads, &cfg(), &acct("a"), id.as_str(), ts(2)).await.unwrap();
            assert!(
                reads.keys.borrow().contains(&crate::store::webhook_key(&id)),
                "GET /jobs shows it"
            );
            assert_eq!(reads.most_at_once.get(), 5);
        });
    }

    /// Submits the async job `ASYNC` and returns the render-jobs message it queued.
    pub(crate) async fn queued_job(jobs: &MemoryKv) -> RenderJobMessage {
        let queue = MemoryQueue::default();
        sub(jobs, &queue, &acct("a"), None, ASYNC.as_bytes(), ts(0)).await.unwrap();
        let message = queue.0.borrow()[0].clone();
        message
    }

    async fn submitted(jobs: &MemoryKv) -> JobId {
        let queue = MemoryQueue::default();
        match sub(jobs, &queue, &acct("a"), None, ASYNC.as_bytes(), ts(0)).await.unwrap() {
            Submission::Accepted(a) => a.job_id,
            other => panic!("{other:?}"),
        }
    }

    fn event(e: &JobEvent) -> Vec<u8> {
        serde_json::to_vec(e).unwrap()
    }

    const RESULT: RenderResult =
        RenderResult { file_size_bytes: 10, render_duration_ms: 20, upload_duration_ms: 30 };

    #[test]
    fn events_move_the_job_forward_once_and_end_it_with_one_webhook() {
        run(async {
            let jobs = MemoryKv::default();
            let webhooks = MemoryQueue::default();
            let id = submitted(&jobs).await;
            let c = cfg();
            let steps = [
                (JobEvent::Processing { at: ts(1) }, true, JobStatus::Processing),
                (JobEvent::Processing { at: ts(1) }, false, JobStatus::Processing),
                (JobEvent::Uploading { at: ts(2) }, true, JobStatus::Uploading),
                (JobEvent::Completed { at: ts(3), result: RESULT }, true, JobStatus::Completed),
                (JobEvent::Completed { at: ts(3), result: RESULT }, false, JobStatus::Completed),
                (
                    JobEvent::Failed { at: ts(4), error_message: "late".into() },
                    false,
                    JobStatus::Completed,
                ),
                (JobEvent::Uploading { at: ts(5) }, false, JobStatus::Completed),
            ];
            for (e, applied, status) in steps {
                let ack = apply_event(&jobs, &webhooks, &lim(), &c, id.as_str(), &event(&e))
                    .await
                    .unwrap();
                assert_eq!((ack.applied, ack.status), (applied, status), "{e:?}");
            }
            let sent = webhooks.0.borrow();
            assert_eq!(sent.len(), 1, "one webhook for the one end");
            assert_eq!(sent[0].payload.webhook_id(), format!("msg_{id}_completed"));
            assert_eq!(jobs.ttl(&job_key(&id)), Some(c.job_ttl_done_secs));
            assert_eq!(jobs.ttl(&stage_key(&id, JobStatus::Completed)), Some(c.job_ttl_done_secs));
            // Every stage key was written exactly once, the base twice (submit, end).
            let writes = jobs.writes.borrow();
            for status in [JobStatus::Processing, JobStatus::Uploading, JobStatus::Completed] {
                assert_eq!(writes.iter().filter(|k| **k == stage_key(&id, status)).count(), 1);
            }
            assert_eq!(writes.iter().filter(|k| **k == job_key(&id)).count(), 2);
        });
    }

    #[test]
    fn an_end_whose_webhook_could_not_be_queued_queues_it_when_repeated() {
        run(async {
            let jobs = MemoryKv::default();
            let webhooks = MemoryQueue::failing_first(1);
            let id = submitted(&jobs).await;
            let c = cfg();
            let completed = event(&JobEvent::Completed { at: ts(3), result: RESULT });
            // The queue refuses: 503, and the renderer will send the event again.
            let e = apply_event(&jobs, &webhooks, &lim(), &c, id.as_str(), &completed)
                .await
                .unwrap_err();
            assert_eq!(e.status(), 503);
            assert!(webhooks.0.borrow().is_empty());
            // Now already applied, yet its webhook is queued, once.
            for _ in 0..3 {
                let ack = apply_event(&jobs, &webhooks, &lim(), &c, id.as_str(), &completed)
                    .await
                    .unwrap();
                assert_eq!((ack.applied, ack.status), (false, JobStatus::Completed));
            }
            assert_eq!(webhooks.0.borrow().len(), 1, "one webhook for the one end");
            // Another terminal event for the ended job queues nothing.
            let failed = event(&JobEvent::Failed { at: ts(4), error_message: "late".into() });
            apply_event(&jobs, &webhooks, &lim(), &c, id.as_str(), &failed).await.unwrap();
            assert_eq!(webhooks.0.borrow().len(), 1);
        });
    }

    #[test]
    fn a_dead_lettered_job_fails_once_with_its_webhook_unless_it_already_ended() {
        run(async {
            let jobs = MemoryKv::default();
            let webhooks = MemoryQueue::default();
            let c = cfg();
            let stuck = submitted(&jobs).await;
            let processing = JobEvent::Processing { at: ts(1) };
            apply_event(&jobs, &webhooks, &lim(), &c, stuck.as_str(), &event(&processing))
                .await
                .unwrap();
            let ack = apply(&jobs, &webhooks, &lim(), &c, &stuck, &gave_up(ts(600))).await.unwrap();
            assert!(ack.applied);
            let view = job_status(&jobs, &c, &acct("a"), stuck.as_str(), ts(601)).await.unwrap();
            assert_eq!(view.status, JobStatus::Failed);
            assert_eq!(view.error_message.as_deref(), Some(GAVE_UP_MESSAGE));
            assert_eq!(view.completed_at, Some(ts(600)));
            assert_eq!(webhooks.0.borrow().len(), 1, "render.failed is sent");
            assert_eq!(webhooks.0.borrow()[0].payload.webhook_id(), format!("msg_{stuck}_failed"));
            // The same message again (at-least-once): nothing more.
            let again =
                apply(&jobs, &webhooks, &lim(), &c, &stuck, &gave_up(ts(700))).await.unwrap();
            assert!(!again.applied);
            assert_eq!(webhooks.0.borrow().len(), 1);

            // A job that completed but whose message was dead-lettered anyway stays completed.
            let done = submitted(&jobs).await;
            let completed = JobEvent::Completed { at: ts(2), result: RESULT };
            apply_event(&jobs, &webhooks, &lim(), &c, done.as_str(), &event(&completed))
                .await
                .unwrap();
            let ack = apply(&jobs, &webhooks, &lim(), &c, &done, &gave_up(ts(600))).await.unwrap();
            assert_eq!((ack.applied, ack.status), (false, JobStatus::Completed));
        });
    }

    #[test]
    fn job_status_for_the_owner_only_and_until_its_ttl() {
        run(async {
            let jobs = MemoryKv::default();
            let webhooks = MemoryQueue::default();
            let id = submitted(&jobs).await;
            let c = cfg();
            let v = job_status(&jobs, &c, &acct("a"), id.as_str(), ts(1)).await.unwrap();
            assert_eq!(v.status, JobStatus::Pending);
            assert_eq!(
                job_status(&jobs, &c, &acct("b"), id.as_str(), ts(1)).await.unwrap_err().status(),
                404
            );
            assert_eq!(
                job_status(&jobs, &c, &acct("a"), "nope", ts(1)).await.unwrap_err().status(),
                404
            );
            let failed = JobEvent::Failed {
                at: ts(10),
                error_message: "Upload failed: 403 Forbidden".into(),
            };
            apply_event(&jobs, &webhooks, &lim(), &c, id.as_str(), &event(&failed)).await.unwrap();
            let v = job_status(&jobs, &c, &acct("a"), id.as_str(), ts(11)).await.unwrap();
            assert_eq!(v.error_message.as_deref(), Some("Upload failed: 403 Forbidden"));
            assert!(job_status(&jobs, &c, &acct("a"), id.as_str(), ts(10 + 3600)).await.is_ok());
            assert_eq!(
                job_status(&jobs, &c, &acct("a"), id.as_str(), ts(10 + 3601))
                    .await
                    .unwrap_err()
                    .status(),
                404
            );
            // A TTL under KV's 60 s minimum: KV keeps the keys longer, reads stop on time.
            let short = EdgeConfig { job_ttl_done_secs: 5, ..c.clone() };
            assert!(job_status(&jobs, &short, &acct("a"), id.as_str(), ts(15)).await.is_ok());
            assert_eq!(
                job_status(&jobs, &short, &acct("a"), id.as_str(), ts(16))
                    .await
                    .unwrap_err()
                    .status(),
                404
            );
            // And once KV expires the keys, it is simply gone.
            jobs.remove(&job_key(&id));
            assert_eq!(
                job_status(&jobs, &c, &acct("a"), id.as_str(), ts(12)).await.unwrap_err().status(),
                404
            );
        });
    }

    /// Submits an async job whose spec is too large for the queue message.
    async fn large_job(jobs: &MemoryKv, queue: &MemoryQueue<RenderJobMessage>) -> JobId {
        let big = format!("<p>{}</p>", "x".repeat(INLINE_SPEC_MAX_BYTES));
        let body = ASYNC.replace("<p>x</p>", &big);
        match sub(jobs, queue, &acct("a"), None, body.as_bytes(), ts(0)).await.unwrap() {
            Submission::Accepted(accepted) => accepted.job_id,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn large_specs_are_served_to_the_renderer_until_the_job_ends() {
        run(async {
            let (jobs, queue, webhooks) =
                (MemoryKv::default(), MemoryQueue::default(), MemoryQueue::default());
            let id = large_job(&jobs, &queue).await;
            assert!(queue.0.borrow()[0].spec.is_none(), "too large to travel inline");
            assert!(job_spec(&jobs, id.as_str()).await.unwrap().content.len() > 60_000);
            assert_eq!(
                job_spec(&jobs, "01JFXYZ123456789ABCDEFGH").await.unwrap_err().status(),
                404
            );
            let c = cfg();
            let processing = JobEvent::Processing { at: ts(1) };
            apply_event(&jobs, &webhooks, &lim(), &c, id.as_str(), &event(&processing))
                .await
                .unwrap();
            assert!(jobs.deletes.borrow().is_empty());
            let completed = JobEvent::Completed { at: ts(2), result: RESULT };
            apply_event(&jobs, &webhooks, &lim(), &c, id.as_str(), &event(&completed))
                .await
                .unwrap();
            assert_eq!(*jobs.deletes.borrow(), [spec_key(&id)]);
            assert_eq!(job_spec(&jobs, id.as_str()).await.unwrap_err().status(), 404);
            // A repeated end deletes again (the first delete may have failed).
            apply_event(&jobs, &webhooks, &lim(), &c, id.as_str(), &event(&completed))
                .await
                .unwrap();
            assert_eq!(jobs.deletes.borrow().len(), 2);
        });
    }

    #[test]
    fn a_dead_lettered_job_drops_its_spec_too() {
        run(async {
            let (jobs, queue, webhooks) =
                (MemoryKv::default(), MemoryQueue::default(), MemoryQueue::default());
            let id = large_job(&jobs, &queue).await;
            assert!(jobs.get(&spec_key(&id)).await.unwrap().is_some());
            apply(&jobs, &webhooks, &lim(), &cfg(), &id, &gave_up(ts(600))).await.unwrap();
            assert!(jobs.get(&spec_key(&id)).await.unwrap().is_none());
        });
    }

    #[test]
    fn no_store_travels_with_the_spec_and_ignored_fields_come_back() {
        run(async {
            let (jobs, queue) = (MemoryKv::default(), MemoryQueue::default());
            let headers = SubmitHeaders { idempotency_key: None, no_store: true, trace: None };
            let body = ASYNC.replace(r#""async""#, r#""pdfOptions":{"timeout":1},"async""#);
            let s = submit(
                (&jobs, &queue, &lim()),
                &cfg(),
                &acct("a"),
                headers,
                body.as_bytes(),
                ts(0),
            )
            .await
            .unwrap();
            assert_eq!(s.ignored, ["pdfOptions.timeout"]);
            assert!(queue.0.borrow()[0].spec.as_ref().unwrap().no_store);
            assert_eq!(jobs.writes.borrow().len(), 1, "only the job's base");
            let sync = br#"{"content":"x","upload_url":"https://b.example.com/a"}"#;
            let s = submit((&jobs, &queue, &lim()), &cfg(), &acct("a"), headers, sync, ts(0))
                .await
                .unwrap();
            assert_eq!(s.ignored, ["upload_url"]);
            let Submission::Sync(spec) = s.submission else { panic!() };
            assert!(spec.no_store);
        });
    }
}
