//! The queue consumers as plain functions over [`Kv`], [`Queue`] and [`Http`], so that their
//! rules are tested natively; the Worker glue only turns a [`Verdict`] into ack or retry.
//!
//! Attempt counts travel in the messages: Cloudflare Queues counts deliveries, but a Rust
//! Worker cannot read that count, and a count kept in KV (read, add one, write) would be
//! neither atomic nor durable. So a message that must be tried again is sent anew with its
//! count raised (and a delay), and only then is the old one acknowledged: at least once, never
//! lost, and the count is exact even across Worker restarts.

use std::time::Duration;

use tailpdf_shared::{
    messages::{
        GroupAnswer, GroupJobEnd, GroupRequest, RenderJobMessage, TakeAnswer, TakeRequest,
        WebhookMessage, TAKE_PATH,
    },
    signing::INTERNAL_SIGNATURE_HEADER,
    JobEvent, JobId, JobStatus, Timestamp,
};

use crate::{
    config::EdgeConfig,
    dead_letters, delivery,
    error::EdgeError,
    events::GAVE_UP_MESSAGE,
    job_object::Ends,
    renderers,
    signed_calls::renderer_call,
    store::{get_json, put_json, stage_key, webhook_key, Kv, Queue},
};

/// An outgoing HTTP POST within a deadline, never following redirects.
#[allow(async_fn_in_trait)] // the Worker is single-threaded: no Send bound wanted
pub trait Http {
    async fn post(&self, post: Post) -> Result<Answer, String>;

    /// As [`Http::post`], and the answer's body too (at most [`MAX_ANSWER_BYTES`] of it).
    async fn post_reading(&self, post: Post) -> Result<(Answer, Vec<u8>), String>;
}

/// One outgoing POST and its deadline, which covers the whole exchange: the answer's head and
/// whatever of its body is read.
#[derive(Debug, Clone)]
pub struct Post {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub timeout: Duration,
    /// Containers mode: the name of the renderer instance's object that carries the call.
    /// Only a call to a renderer sets it, never one to a URL a client gave (a webhook).
    pub instance: Option<String>,
}

impl Post {
    /// A signed call to `path` of the renderer at `origin`, within `PUSH_TIMEOUT_SECS`.
    pub fn to_renderer(
        cfg: &EdgeConfig,
        origin: &str,
        path: &str,
        body: Vec<u8>,
        now: Timestamp,
    ) -> Self {
        let (url, signature) = renderer_call(cfg, origin, "POST", path, &body, now.unix());
        let headers = vec![
            ("Content-Type", String::from("application/json")),
            (INTERNAL_SIGNATURE_HEADER, signature),
        ];
        let instance = cfg
            .containers
            .as_ref()
            .and_then(|_| crate::containers::instance_of(&url))
            .map(str::to_owned);
        Self { url, headers, body, timeout: cfg.push_timeout, instance }
    }
}

/// The most of an answer's body [`Http::post_reading`] reads: a group's answer is a few dozen
/// bytes a job.
pub const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// An answer's body read chunk by chunk, never past a limit: a wrong or missing
/// `Content-Length` must neither allocate what never comes nor let a peer send without end.
#[derive(Debug)]
pub struct CappedBody {
    limit: usize,
    body: Vec<u8>,
}

impl CappedBody {
    /// `None` when the answer declares more than `limit`: not worth reading.
    pub fn start(limit: usize, declared: Option<usize>) -> Option<Self> {
        (declared.is_none_or(|n| n <= limit)).then(|| Self { limit, body: Vec::new() })
    }

    /// Adds `chunk`; `false` once the body would pass the limit (stop reading: no answer).
    pub fn push(&mut self, chunk: &[u8]) -> bool {
        if self.body.len().saturating_add(chunk.len()) > self.limit {
            return false;
        }
        self.body.extend_from_slice(chunk);
        true
    }

    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// What an HTTP call answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u32>,
}

/// What becomes of the message a consumer was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Done with it (its follow-up, if any, is already queued).
    Ack,
    /// Nothing could be recorded: Queues delivers this same message again after the delay.
    Retry { delay_secs: u32 },
}

/// Wait before a message comes back when storage, a queue or a binding failed.
pub const STORAGE_RETRY_SECS: u32 = 30;

/// Deadline of a `POST /jobs/take`: the renderer answers it at once, whatever the job.
const TAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Push mode: one `render-jobs` message to the renderer's `POST /jobs/take`
/// ([`TAKE_PATH`]), which answers at once; nothing waits for the render. The message's
/// `attempt` is the number a run started now gets. What follows the answer:
/// - `taken` or `running`: the same message comes back after `cfg.push_check_secs` to ask
///   again (the attempt raised once a run was started), so that a renderer that died with
///   the job is found out and the job started again;
/// - `ended`: done;
/// - `retry`: its run did not end it; started again after the delay it asked for;
/// - `busy`: asked again later, waiting longer the older the job, and no attempt counted;
///   after `cfg.render_max_wait_secs` the job fails, saying why;
/// - no answer, or another status: [`next_attempt`], as before (counted, then failed after
///   `cfg.render_max_attempts`).
///
/// Once the job has been started `cfg.render_max_attempts` times, the renderer is asked
/// without leave to start it again; if it no longer has it, the job fails here.
pub async fn push_render_job(
    http: &impl Http,
    render_jobs: &impl Queue<RenderJobMessage>,
    // Where a job that fails here records its end.
    ends: &impl Ends,
    cfg: &EdgeConfig,
    job: &RenderJobMessage,
    now: Timestamp,
) -> Verdict {
    let job = &RenderJobMessage { attempt: job.attempt.max(1), ..job.clone() };
    let start = job.attempt <= cfg.render_max_attempts;
    let body = serde_json::to_vec(&TakeRequest { job: job.clone(), start }).unwrap_or_default();
    // The renderer that took the job alone; else each in the job's own order until one
    // takes it or answers for it: one that does not answer, or is busy, is skipped.
    let candidates = match job.taken_by.as_deref() {
        Some(taker) if cfg.renderers.iter().any(|r| r == taker) => vec![taker],
        _ => renderers::order(&cfg.renderers, job.job_id.as_str()),
    };
    let mut answered: Option<(&str, TakeAnswer)> = None;
    let mut busy: Option<u32> = None;
    let mut failed = Again::after(None, cfg);
    for origin in candidates {
        let post = Post {
            timeout: TAKE_TIMEOUT.min(cfg.push_timeout),
            ..Post::to_renderer(cfg, origin, TAKE_PATH, body.clone(), now)
        };
        match http.post_reading(post).await {
            Ok((answer, body)) if answer.status == 200 => {
                match serde_json::from_slice::<TakeAnswer>(&body) {
                    Ok(TakeAnswer::Busy { delay_secs }) => {
                        busy = Some(busy.map_or(delay_secs, |d| d.min(delay_secs)));
                    }
                    Ok(answer) => {
                        answered = Some((origin, answer));
                        break;
                    }
                    Err(_) => {
                        failed = Again::unreadable(cfg);
                    }
                }
            }
            other => failed = Again::after(other.ok().map(|(a, _)| a).as_ref(), cfg),
        }
    }
    let ask_again = |attempt: u32, delay_secs: u32, taken_by: Option<String>| async move {
        let next = RenderJobMessage { attempt, taken_by, ..job.clone() };
        match render_jobs.send_after(&next, delay_secs.max(1)).await {
            Ok(()) => Verdict::Ack,
            Err(_) => Verdict::Retry { delay_secs: delay_secs.max(1) },
        }
    };
    let answer = match (answered, busy) {
        (Some(answered), _) => Ok(answered),
        (None, Some(delay_secs)) => Ok(("", TakeAnswer::Busy { delay_secs })),
        (None, None) => Err(failed),
    };
    match answer {
        Err(again) => {
            // Whichever renderer took it stopped answering: the next delivery goes anywhere.
            let job = &RenderJobMessage { taken_by: None, ..job.clone() };
            next_attempt(render_jobs, ends, cfg, job, again, now).await
        }
        Ok((_, TakeAnswer::Ended)) => Verdict::Ack,
        Ok((taker, TakeAnswer::Taken)) => {
            ask_again(job.attempt + 1, cfg.push_check_secs, Some(taker.to_owned())).await
        }
        Ok((taker, TakeAnswer::Running)) => {
            ask_again(job.attempt, cfg.push_check_secs, Some(taker.to_owned())).await
        }
        Ok((_, TakeAnswer::Retry { delay_secs, .. })) => {
            ask_again(job.attempt, delay_secs, None).await
        }
        Ok((_, TakeAnswer::Busy { delay_secs })) => {
            // Since it was submitted (its id is a ULID of that instant); 0 when unknown.
            let waited = job.job_id.age_secs(now).unwrap_or(0);
            if waited > cfg.render_max_wait_secs {
                let why = format!(
                    "Render failed: no renderer had room for the job within {} s; submit it again.",
                    cfg.render_max_wait_secs
                );
                return fail_here(ends, cfg, job, why, now).await;
            }
            ask_again(job.attempt, busy_delay(delay_secs, waited), None).await
        }
        Ok((_, TakeAnswer::Unknown)) => {
            let why = format!(
                "Render failed: the job was started {} times and did not end; submit it again.",
                cfg.render_max_attempts
            );
            fail_here(ends, cfg, job, why, now).await
        }
    }
}

/// The wait before asking a busy renderer again: what it asked for, and longer the longer the
/// job has waited (a quarter of that, at most a minute), so that a flood of one account's
/// jobs does not turn into a flood of questions.
pub fn busy_delay(asked_secs: u32, waited_secs: u64) -> u32 {
    let grown = u32::try_from((waited_secs / 4).min(60)).unwrap_or(60);
    asked_secs.max(grown).max(1)
}

/// Why a delivery to the renderer did not end the job, and when to try again.
#[derive(Clone)]
struct Again {
    why: String,
    delay_secs: u32,
}

impl Again {
    /// After an answer other than 200, or none.
    fn after(answer: Option<&Answer>, cfg: &EdgeConfig) -> Self {
        let why = match answer {
            Some(Answer { status: 503, .. }) => String::from("every renderer stayed busy"),
            Some(Answer { status, .. }) => format!("the renderer answered {status}"),
            None => String::from("no renderer could be reached"),
        };
        let delay_secs = answer.and_then(|a| a.retry_after).unwrap_or(cfg.render_retry_delay_secs);
        Self { why, delay_secs }
    }

    /// After a 200 whose body is not the answer expected.
    fn unreadable(cfg: &EdgeConfig) -> Self {
        Self {
            why: String::from("the renderer's answer could not be read"),
            delay_secs: cfg.render_retry_delay_secs,
        }
    }
}

/// A job the renderer did not end: sent again with its attempt count raised after the delay,
/// or, after `cfg.render_max_attempts`, failed here saying why. One rule for `POST /jobs` and
/// `POST /jobs/group`.
async fn next_attempt(
    queue: &impl Queue<RenderJobMessage>,
    ends: &impl Ends,
    cfg: &EdgeConfig,
    job: &RenderJobMessage,
    Again { why, delay_secs }: Again,
    now: Timestamp,
) -> Verdict {
    let attempt = job.attempt.max(1);
    if attempt >= cfg.render_max_attempts {
        let error_message = format!(
            "Render failed: the job was not rendered after {attempt} attempts ({why}); submit \
             it again."
        );
        return fail_here(ends, cfg, job, error_message, now).await;
    }
    let next = RenderJobMessage { attempt: attempt + 1, taken_by: None, ..job.clone() };
    match queue.send_after(&next, delay_secs.max(1)).await {
        Ok(()) => Verdict::Ack,
        Err(_) => Verdict::Retry { delay_secs: delay_secs.max(1) },
    }
}

/// Push mode for `render-batches`: the messages of one delivery, grouped by batch, each group
/// to the renderer's `POST /jobs/group` in one call (signed as `POST /jobs`), held until it
/// answers with every job's end. A job it answers `ended` is done; one it asks to have again,
/// one it does not mention, and every job of a group it did not answer with 200 and a
/// [`GroupAnswer`] go through [`next_attempt`], as `POST /jobs`'s. The verdicts are in the
/// order of `messages`.
pub async fn push_render_group(
    http: &impl Http,
    render_batches: &impl Queue<RenderJobMessage>,
    ends: &impl Ends,
    cfg: &EdgeConfig,
    messages: &[RenderJobMessage],
    now: Timestamp,
) -> Vec<Verdict> {
    // Groups in the order their first message came, each in its messages' order.
    let mut groups: Vec<(Option<&JobId>, Vec<usize>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let batch = message.batch.as_ref().map(|b| &b.batch_id);
        match groups.iter_mut().find(|(b, _)| batch.is_some() && *b == batch) {
            Some((_, members)) => members.push(i),
            None => groups.push((batch, vec![i])),
        }
    }
    let calls = groups.iter().map(|(_, members)| async move {
        let group: Vec<&RenderJobMessage> = members.iter().map(|&i| &messages[i]).collect();
        let verdicts = push_group(http, render_batches, ends, cfg, &group, now).await;
        members.iter().copied().zip(verdicts).collect::<Vec<_>>()
    });
    let mut verdicts = vec![Verdict::Retry { delay_secs: STORAGE_RETRY_SECS }; messages.len()];
    for (i, verdict) in futures::future::join_all(calls).await.into_iter().flatten() {
        verdicts[i] = verdict;
    }
    verdicts
}

/// One group to the renderer; its verdicts in the group's order.
async fn push_group(
    http: &impl Http,
    render_batches: &impl Queue<RenderJobMessage>,
    ends: &impl Ends,
    cfg: &EdgeConfig,
    group: &[&RenderJobMessage],
    now: Timestamp,
) -> Vec<Verdict> {
    let jobs: Vec<RenderJobMessage> = group
        .iter()
        .map(|job| RenderJobMessage { attempt: job.attempt.max(1), ..(*job).clone() })
        .collect();
    let body = serde_json::to_vec(&GroupRequest { jobs }).unwrap_or_default();
    // Each job's end as a renderer answered it, or why the whole group did not end: the
    // renderers in the group's own order, one that does not answer with its ends skipped.
    let key = group.first().map(|job| job.batch.as_ref().map_or(&job.job_id, |b| &b.batch_id));
    let mut ends_by_job: Result<Vec<GroupJobEnd>, Again> = Err(Again::after(None, cfg));
    for origin in renderers::order(&cfg.renderers, key.map_or("", JobId::as_str)) {
        let post = Post::to_renderer(cfg, origin, "/jobs/group", body.clone(), now);
        ends_by_job = match http.post_reading(post).await {
            Ok((answer, body)) if answer.status == 200 => {
                serde_json::from_slice::<GroupAnswer>(&body)
                    .map(|a| a.jobs)
                    .map_err(|_| Again::unreadable(cfg))
            }
            answered => Err(Again::after(answered.ok().map(|(a, _)| a).as_ref(), cfg)),
        };
        if ends_by_job.is_ok() {
            break;
        }
    }
    let settled = group.iter().map(|job| {
        let again = match &ends_by_job {
            Err(again) => again.clone(),
            Ok(ends) => match ends.iter().find(|end| end_job_id(end) == &job.job_id) {
                Some(GroupJobEnd::Ended { .. }) => {
                    return futures::future::Either::Left(async { Verdict::Ack })
                }
                Some(GroupJobEnd::Retry { delay_secs, .. }) => Again {
                    why: String::from("the renderer could not end it"),
                    delay_secs: *delay_secs,
                },
                None => Again {
                    why: String::from("the renderer's answer left it out"),
                    delay_secs: cfg.render_retry_delay_secs,
                },
            },
        };
        futures::future::Either::Right(next_attempt(render_batches, ends, cfg, job, again, now))
    });
    futures::future::join_all(settled).await
}

/// render-jobs-dlq: every delivery of the job failed (push or pull mode), so the job fails
/// with its render.failed webhook rather than staying pending until its keys expire.
pub async fn fail_dead_lettered(
    ends: &impl Ends,
    cfg: &EdgeConfig,
    job: &RenderJobMessage,
    now: Timestamp,
) -> Verdict {
    fail_here(ends, cfg, job, GAVE_UP_MESSAGE.to_owned(), now).await
}

/// webhooks-dlq: the delivery is kept for an operator to list and replay.
pub async fn keep_dead_letter(
    jobs: &impl Kv,
    hook: &WebhookMessage,
    cfg: &EdgeConfig,
    now: Timestamp,
) -> Verdict {
    match dead_letters::keep(jobs, hook, now, cfg.dead_letter_ttl_secs).await {
        Ok(()) => Verdict::Ack,
        Err(_) => Verdict::Retry { delay_secs: STORAGE_RETRY_SECS },
    }
}

/// Fails the job here with `error_message` (its webhook queued as any end's).
async fn fail_here(
    ends: &impl Ends,
    cfg: &EdgeConfig,
    job: &RenderJobMessage,
    error_message: String,
    now: Timestamp,
) -> Verdict {
    let event = JobEvent::Failed { at: now, error_message };
    match ends.end(cfg, &job.job_id, &event).await {
        Ok(_) => Verdict::Ack,
        // Expired meanwhile: nothing left to fail.
        Err(EdgeError::Unknown(_)) => Verdict::Ack,
        Err(_) => Verdict::Retry { delay_secs: STORAGE_RETRY_SECS },
    }
}

fn end_job_id(end: &GroupJobEnd) -> &JobId {
    match end {
        GroupJobEnd::Ended { job_id } | GroupJobEnd::Retry { job_id, .. } => job_id,
    }
}

/// The `webhooks` queue: one delivery attempt of `hook`. A failed attempt (a non-2xx answer,
/// a redirect among them, or no answer in time) is sent again after the next delay of
/// `cfg.webhook_retry_delays` to `webhooks`; after the last, it goes to `dead_letters`. The
/// job's `webhook` object records every attempt.
pub async fn deliver_webhook(
    http: &impl Http,
    jobs: &impl Kv,
    (webhooks, dead_letters): (&impl Queue<WebhookMessage>, &impl Queue<WebhookMessage>),
    cfg: &EdgeConfig,
    hook: &WebhookMessage,
    secret: Option<&str>,
    now: Timestamp,
) -> Verdict {
    // One job, one outcome: a webhook of an end that lost to another is dropped, undelivered.
    // Only the end key decides, so only it is read. A batch completes once: nothing to check.
    if let Some(job) = hook.payload.job() {
        let end_key = stage_key(&job.job_id, JobStatus::Completed);
        match get_json::<JobEvent>(jobs, &end_key).await {
            Ok(end) if !job.agrees_with(end.as_ref().map(JobEvent::status)) => {
                return Verdict::Ack;
            }
            Ok(_) => {}
            Err(_) => return Verdict::Retry { delay_secs: STORAGE_RETRY_SECS },
        }
    }
    let attempt = hook.attempt + 1;
    let delivery::DeliveryRequest { url, body, headers } =
        delivery::request(hook, secret, now.unix());
    let post = Post {
        url,
        headers,
        body: body.into_bytes(),
        timeout: cfg.webhook_timeout,
        instance: None,
    };
    let status = http.post(post).await.ok().map(|answer| answer.status);
    // The record is a view for GET /jobs; the count it shows comes from the message.
    // GET /batches/{id} shows no delivery: a batch's webhook is not recorded.
    if let Some(job) = hook.payload.job() {
        let state = delivery::record(attempt, status, now);
        let _ = put_json(jobs, &webhook_key(&job.job_id), &state, cfg.job_ttl_done_secs).await;
    }
    let sent_on = WebhookMessage { attempt, ..hook.clone() };
    let (queue, delay_secs) = match delivery::next(status, attempt, &cfg.webhook_retry_delays) {
        delivery::Next::Done => return Verdict::Ack,
        delivery::Next::Retry { delay_secs } => (Some(webhooks), delay_secs),
        delivery::Next::DeadLetter => (None, 0),
    };
    let sent = match queue {
        Some(webhooks) => webhooks.send_after(&sent_on, delay_secs).await,
        None => dead_letters.send(&sent_on).await,
    };
    match sent {
        Ok(()) => Verdict::Ack,
        Err(_) => Verdict::Retry { delay_secs: delay_secs.max(STORAGE_RETRY_SECS) },
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::{
        admission, events,
        jobs::{
            self,
            tests::{acct, cfg, lim, queued_job, run, ts},
        },
        limits::tests::MemoryLimiter,
        store::memory::{MemoryKv, MemoryQueue},
    };
    use tailpdf_shared::{job::WebhookDelivery, webhook::WebhookPayload, JobRecord};

    /// Answers each call with the next of `answers` (and, when reading, the next of
    /// `bodies`, or none); records what was sent.
    #[derive(Default)]
    struct FakeHttp {
        answers: RefCell<Vec<Result<Answer, String>>>,
        bodies: RefCell<Vec<Vec<u8>>>,
        sent: RefCell<Vec<(String, Vec<u8>)>>,
        instances: RefCell<Vec<Option<String>>>,
    }

    impl FakeHttp {
        fn answering(answers: Vec<Result<Answer, String>>) -> Self {
            Self { answers: RefCell::new(answers), ..Self::default() }
        }

        fn with_bodies(self, bodies: Vec<Vec<u8>>) -> Self {
            Self { bodies: RefCell::new(bodies), ..self }
        }
    }

    impl Http for FakeHttp {
        async fn post(&self, post: Post) -> Result<Answer, String> {
            self.instances.borrow_mut().push(post.instance);
            self.sent.borrow_mut().push((post.url, post.body));
            self.answers.borrow_mut().remove(0)
        }

        async fn post_reading(&self, post: Post) -> Result<(Answer, Vec<u8>), String> {
            let answer = self.post(post).await?;
            let mut bodies = self.bodies.borrow_mut();
            Ok((answer, if bodies.is_empty() { Vec::new() } else { bodies.remove(0) }))
        }
    }

    fn status(status: u16) -> Result<Answer, String> {
        Ok(Answer { status, retry_after: None })
    }

    /// What the push consumers work with: KV, the queue an attempt goes back on, the webhook
    /// queue, the account's limiter and the settings.
    struct Push {
        jobs: MemoryKv,
        again: MemoryQueue<RenderJobMessage>,
        webhooks: MemoryQueue<WebhookMessage>,
        limiter: MemoryLimiter,
        cfg: EdgeConfig,
    }

    impl Push {
        fn new(cfg: EdgeConfig) -> Self {
            Self {
                jobs: MemoryKv::default(),
                again: MemoryQueue::default(),
                webhooks: MemoryQueue::default(),
                limiter: lim(),
                cfg,
            }
        }

        async fn job(&self, http: &FakeHttp, message: &RenderJobMessage, now: i64) -> Verdict {
            let ends = (&self.jobs, &self.webhooks, &self.limiter);
            push_render_job(http, &self.again, &ends, &self.cfg, message, ts(now)).await
        }

        async fn group(
            &self,
            http: &FakeHttp,
            messages: &[RenderJobMessage],
            now: i64,
        ) -> Vec<Verdict> {
            let ends = (&self.jobs, &self.webhooks, &self.limiter);
            push_render_group(http, &self.again, &ends, &self.cfg, messages, ts(now)).await
        }

        async fn view(&self, job: &RenderJobMessage, now: i64) -> tailpdf_shared::JobView {
            let (id, account) = (job.job_id.as_str(), &acct("a"));
            jobs::job_status(&self.jobs, &self.cfg, account, id, ts(now)).await.unwrap()
        }
    }

    fn take(answer: &TakeAnswer) -> Vec<u8> {
        serde_json::to_vec(answer).unwrap()
    }

    /// What the last call to the renderer asked.
    fn asked(http: &FakeHttp) -> (String, TakeRequest) {
        let sent = http.sent.borrow();
        let (url, body) = sent.last().unwrap();
        (url.clone(), serde_json::from_slice(body).unwrap())
    }

    #[test]
    fn an_answer_is_read_up_to_its_limit_and_no_further() {
        assert!(CappedBody::start(10, Some(11)).is_none(), "declared too long: not read");
        let mut body = CappedBody::start(10, None).unwrap();
        assert!(body.push(b"12345") && body.push(b"67890"));
        assert!(!body.push(b"x"), "one byte over");
        assert_eq!(body.into_body(), b"1234567890");
        // A Content-Length that lies short does not let more in.
        let mut body = CappedBody::start(10, Some(2)).unwrap();
        assert!(!body.push(&[0; 11]));
    }

    #[test]
    fn push_mode_counts_attempts_in_the_message_and_the_renderer_sees_them() {
        run(async {
            let push = Push::new(cfg());
            let mut current = queued_job(&push.jobs).await;
            let http = FakeHttp::answering(vec![
                Ok(Answer { status: 503, retry_after: Some(7) }),
                Err("connection refused".into()),
                status(200),
            ])
            // The 503's body first (none), then the 200's.
            .with_bodies(vec![Vec::new(), take(&TakeAnswer::Ended)]);
            for expected in [1, 2] {
                let verdict = push.job(&http, &current, 1).await;
                assert_eq!(verdict, Verdict::Ack, "the next attempt is queued first");
                let (url, request) = asked(&http);
                assert!(url.ends_with(TAKE_PATH), "{url}");
                assert_eq!(request.job.attempt, expected, "the renderer is told the real attempt");
                assert!(request.start);
                current = push.again.0.borrow().last().unwrap().clone();
                assert_eq!(current.attempt, expected + 1);
            }
            let default_delay = push.cfg.render_retry_delay_secs;
            assert_eq!(push.again.delays(), [7, default_delay], "Retry-After first");
            assert_eq!(push.job(&http, &current, 2).await, Verdict::Ack);
            assert_eq!(push.again.0.borrow().len(), 2, "ended: nothing more queued");
        });
    }

    /// The issue-28 finding: the consumer held each delivery until its job ended, so one
    /// account's long renders held up every job queued behind them. Now the renderer answers
    /// at once and the message comes back to ask about the job until it has ended.
    #[test]
    fn a_taken_job_is_asked_about_until_it_ends_and_started_again_when_the_renderer_lost_it() {
        run(async {
            let push = Push::new(cfg());
            let first = queued_job(&push.jobs).await;
            let check = push.cfg.push_check_secs;
            let answers = [
                TakeAnswer::Taken,
                TakeAnswer::Running,
                // The renderer restarted without it: started again, as attempt 2.
                TakeAnswer::Taken,
                TakeAnswer::Retry { delay_secs: 9, reason: String::from("Chromium crashed") },
                TakeAnswer::Taken,
                TakeAnswer::Ended,
            ];
            let http = FakeHttp::answering(vec![status(200); answers.len()])
                .with_bodies(answers.iter().map(take).collect());
            let mut current = first.clone();
            let mut asked_with = Vec::new();
            for _ in &answers {
                assert_eq!(push.job(&http, &current, 1).await, Verdict::Ack);
                asked_with.push(asked(&http).1.job.attempt);
                if let Some(next) = push.again.0.borrow().last() {
                    current = next.clone();
                }
            }
            assert_eq!(asked_with, [1, 2, 2, 3, 3, 4], "a run started raises the attempt");
            assert_eq!(push.again.delays(), [check, check, check, 9, check], "then done");
            assert!(push.again.0.borrow().iter().all(|m| m.job_id == first.job_id));
            assert!(push.webhooks.0.borrow().is_empty(), "the edge itself ended nothing");
        });
    }

    #[test]
    fn a_job_started_as_often_as_allowed_is_only_asked_about_then_failed_if_it_is_gone() {
        run(async {
            let push = Push::new(EdgeConfig { render_max_attempts: 2, ..cfg() });
            let mut message = queued_job(&push.jobs).await;
            message.attempt = 3;
            let http = FakeHttp::answering(vec![status(200), status(200)])
                .with_bodies(vec![take(&TakeAnswer::Running), take(&TakeAnswer::Unknown)]);
            assert_eq!(push.job(&http, &message, 1).await, Verdict::Ack);
            assert!(!asked(&http).1.start, "no leave to start it a third time");
            assert_eq!(push.again.0.borrow().len(), 1, "still running there: asked again");
            assert_eq!(push.job(&http, &message, 2).await, Verdict::Ack);
            let view = push.view(&message, 3).await;
            assert_eq!(view.status, JobStatus::Failed);
            let why = view.error_message.unwrap();
            assert!(why.contains("started 2 times and did not end"), "{why}");
            assert_eq!(push.webhooks.0.borrow().len(), 1, "render.failed is sent");
        });
    }

    #[test]
    fn busy_answers_are_no_attempts_wait_longer_as_the_job_ages_and_end_at_the_limit() {
        assert_eq!(busy_delay(1, 0), 1);
        assert_eq!(busy_delay(1, 40), 10, "a quarter of the wait so far");
        assert_eq!(busy_delay(1, 3600), 60, "at most a minute");
        assert_eq!(busy_delay(90, 0), 90, "what the renderer asks for, at least");
        run(async {
            let push = Push::new(EdgeConfig { render_max_wait_secs: 600, ..cfg() });
            let message = queued_job(&push.jobs).await;
            let busy = TakeAnswer::Busy { delay_secs: 1 };
            let http = FakeHttp::answering(vec![status(200); 3]).with_bodies(vec![
                take(&busy),
                take(&busy),
                take(&busy),
            ]);
            // Submitted at ts(0): asked at 2 s, 120 s and (past the limit) 601 s.
            for now in [2, 120] {
                assert_eq!(push.job(&http, &message, now).await, Verdict::Ack);
            }
            let again = push.again.0.borrow().clone();
            assert!(again.iter().all(|m| m.attempt == 1), "busy is no attempt");
            assert_eq!(push.again.delays(), [1, 30]);
            assert_eq!(push.job(&http, &message, 601).await, Verdict::Ack);
            let view = push.view(&message, 602).await;
            assert_eq!(view.status, JobStatus::Failed);
            let why = view.error_message.unwrap();
            assert!(why.contains("no renderer had room for the job within 600 s"), "{why}");
        });
    }

    /// The messages of a batch of `n` documents, as `POST /pdf/batch` queued them.
    async fn batch_messages(jobs: &MemoryKv, n: usize) -> Vec<RenderJobMessage> {
        let queue = MemoryQueue::default();
        let documents: Vec<_> = (0..n)
            .map(|_| serde_json::json!({"content": "<p>x</p>", "upload_url": "https://b.example.com/a"}))
            .collect();
        let body = serde_json::json!({ "documents": documents }).to_string();
        let limiter = lim();
        crate::batches::submit_batch(
            (jobs, &queue, &limiter),
            &cfg(),
            &acct("a"),
            admission::SubmitHeaders::default(),
            body.as_bytes(),
            ts(0),
        )
        .await
        .unwrap();
        let sent = queue.0.borrow().clone();
        sent
    }

    #[test]
    fn push_mode_hands_each_batch_s_documents_to_the_renderer_together() {
        run(async {
            let push = Push::new(cfg());
            let jobs = &push.jobs;
            let (a, b) = (batch_messages(jobs, 3).await, batch_messages(jobs, 1).await);
            // One delivery, batches interleaved.
            let messages = vec![a[0].clone(), b[0].clone(), a[1].clone(), a[2].clone()];
            let answer = GroupAnswer {
                jobs: vec![
                    GroupJobEnd::Ended { job_id: a[0].job_id.clone() },
                    GroupJobEnd::Retry { job_id: a[1].job_id.clone(), delay_secs: 9 },
                    // a[2] left out.
                ],
            };
            let http = FakeHttp::answering(vec![
                status(200),
                Ok(Answer { status: 503, retry_after: Some(4) }),
            ])
            .with_bodies(vec![serde_json::to_vec(&answer).unwrap()]);
            let verdicts = push.group(&http, &messages, 1).await;
            assert_eq!(verdicts, [Verdict::Ack; 4], "each ended or sent again");
            let sent = http.sent.borrow();
            assert_eq!(sent.len(), 2, "one call per batch");
            assert!(sent.iter().all(|(url, _)| url.ends_with("/jobs/group")));
            let group: GroupRequest = serde_json::from_slice(&sent[0].1).unwrap();
            let ids: Vec<_> = group.jobs.iter().map(|j| j.job_id.clone()).collect();
            assert_eq!(ids, [a[0].job_id.clone(), a[1].job_id.clone(), a[2].job_id.clone()]);
            assert!(group.jobs.iter().all(|j| j.attempt == 1));
            // Sent again: a[1] after the delay it asked for, a[2] after the default, b[0]
            // after the renderer's Retry-After.
            let again: Vec<_> = push.again.0.borrow().iter().map(|m| m.job_id.clone()).collect();
            assert_eq!(again.len(), 3);
            assert!(push.again.0.borrow().iter().all(|m| m.attempt == 2 && m.batch.is_some()));
            let delay_of =
                |id: &JobId| push.again.delays()[again.iter().position(|x| x == id).unwrap()];
            assert_eq!(delay_of(&a[1].job_id), 9);
            assert_eq!(delay_of(&a[2].job_id), push.cfg.render_retry_delay_secs);
            assert_eq!(delay_of(&b[0].job_id), 4);
        });
    }

    #[test]
    fn a_group_without_a_readable_answer_is_retried_and_fails_after_the_last_attempt() {
        run(async {
            let push = Push::new(EdgeConfig { render_max_attempts: 3, ..cfg() });
            let mut a = batch_messages(&push.jobs, 2).await;
            a[1].attempt = 3;
            let http = FakeHttp::answering(vec![status(200)]).with_bodies(vec![b"{}".to_vec()]);
            assert_eq!(push.group(&http, &a, 1).await, [Verdict::Ack, Verdict::Ack]);
            assert_eq!(push.again.0.borrow().len(), 1, "the first goes again");
            let view = push.view(&a[1], 2).await;
            assert_eq!(view.status, JobStatus::Failed, "the last attempt fails the job");
            assert!(view.error_message.unwrap().contains("answer could not be read"));
            // A queue that refuses the next attempt gets the message back.
            let http = FakeHttp::answering(vec![Err("refused".into())]);
            let push = Push { again: MemoryQueue::failing(), ..push };
            let verdicts = push.group(&http, &a[..1], 3).await;
            assert!(matches!(verdicts[..], [Verdict::Retry { .. }]));
        });
    }

    #[test]
    fn push_mode_fails_the_job_with_its_cause_after_the_last_attempt() {
        run(async {
            let push = Push::new(EdgeConfig { render_max_attempts: 3, ..cfg() });
            let mut message = queued_job(&push.jobs).await;
            message.attempt = 3;
            let http = FakeHttp::answering(vec![Err("connection refused".into())]);
            assert_eq!(push.job(&http, &message, 5).await, Verdict::Ack);
            assert!(push.again.0.borrow().is_empty(), "not queued again");
            let view = push.view(&message, 6).await;
            assert_eq!(view.status, JobStatus::Failed);
            let why = view.error_message.unwrap();
            assert!(why.contains("after 3 attempts (no renderer could be reached)"), "{why}");
            assert_eq!(push.webhooks.0.borrow().len(), 1, "render.failed is sent");
        });
    }

    #[test]
    fn a_queue_that_refuses_the_next_attempt_gets_the_message_back() {
        run(async {
            let push = Push { again: MemoryQueue::failing(), ..Push::new(cfg()) };
            let message = queued_job(&push.jobs).await;
            let http = FakeHttp::answering(vec![status(503)]);
            let verdict = push.job(&http, &message, 1).await;
            assert!(matches!(verdict, Verdict::Retry { .. }), "never acked before it is safe");
        });
    }

    /// Polls `a` and `b` in the order `schedule` gives (true: `a`), one step each time; a
    /// finished one is skipped. Returns how many steps each took.
    fn interleave<A: std::future::Future, B: std::future::Future>(
        a: A,
        b: B,
        schedule: &[bool],
    ) -> (usize, usize) {
        use std::task::{Context, Waker};
        let (mut a, mut b) = (std::pin::pin!(a), std::pin::pin!(b));
        let mut cx = Context::from_waker(Waker::noop());
        let (mut a_done, mut b_done, mut steps) = (false, false, (0, 0));
        let mut order = schedule.iter().copied();
        while !(a_done && b_done) {
            let pick_a = if a_done {
                false
            } else if b_done {
                true
            } else {
                order.next().unwrap_or(true)
            };
            if pick_a {
                steps.0 += 1;
                a_done = a.as_mut().poll(&mut cx).is_ready();
            } else {
                steps.1 += 1;
                b_done = b.as_mut().poll(&mut cx).is_ready();
            }
        }
        steps
    }

    /// Every way of merging `a` steps of one call with `b` steps of another.
    fn merges(a: usize, b: usize) -> Vec<Vec<bool>> {
        if a == 0 || b == 0 {
            return vec![vec![a > 0; a + b]];
        }
        let mut out = Vec::new();
        for (first, rest) in [(true, merges(a - 1, b)), (false, merges(a, b - 1))] {
            out.extend(rest.into_iter().map(|mut m| {
                m.insert(0, first);
                m
            }));
        }
        out
    }

    #[test]
    fn two_different_ends_racing_deliver_one_webhook_in_every_interleaving() {
        // A late `completed` from a renderer against the dead-letter `failed`, each loading
        // the job before or after the other wrote, at every point of either.
        run(async {
            let base = MemoryKv::default();
            let message = queued_job(&base).await;
            let c = cfg();
            let (id, webhooks) = (message.job_id.clone(), MemoryQueue::default());
            let processing = JobEvent::Processing { at: ts(1) };
            events::apply(&base, &webhooks, &lim(), &c, &id, &processing).await.unwrap();
            let completed = JobEvent::Completed {
                at: ts(2),
                result: tailpdf_shared::job::RenderResult {
                    file_size_bytes: 9,
                    render_duration_ms: 1,
                    upload_duration_ms: 1,
                },
            };
            let race = |schedule: &[bool]| {
                let (jobs, queued) = (base.snapshot(), MemoryQueue::default());
                let kv = crate::store::memory::Yielding(&jobs);
                let limiter = lim();
                let gave_up = events::gave_up(ts(3));
                let a = events::apply(&kv, &queued, &limiter, &c, &id, &completed);
                let b = events::apply(&kv, &queued, &limiter, &c, &id, &gave_up);
                let steps = interleave(a, b, schedule);
                (jobs, queued, steps)
            };
            let (_, _, (a_steps, b_steps)) = race(&[]);
            let schedules = merges(a_steps, b_steps);
            // A job loads in one step (its reads go out at once); its writes are steps of their
            // own: enough points for the two ends to cross.
            assert!(schedules.len() > 20, "{a_steps} and {b_steps} steps: {}", schedules.len());
            let mut both_queued = 0;
            for schedule in &schedules {
                let (jobs, queued, _) = race(schedule);
                let stored =
                    jobs::job_status(&jobs, &c, &acct("a"), id.as_str(), ts(4)).await.unwrap();
                assert!(stored.status.is_terminal());
                let messages = queued.0.borrow().clone();
                both_queued += usize::from(messages.len() == 2);
                let http = FakeHttp::answering(vec![status(200); messages.len()]);
                let (retries, dead) = (MemoryQueue::default(), MemoryQueue::default());
                for m in &messages {
                    deliver_webhook(&http, &jobs, (&retries, &dead), &c, m, None, ts(5)).await;
                }
                let sent = http.sent.borrow();
                assert_eq!(sent.len(), 1, "{schedule:?}: {} webhooks delivered", sent.len());
                let body: serde_json::Value = serde_json::from_slice(&sent[0].1).unwrap();
                assert_eq!(body["data"]["status"], stored.status.as_str(), "{schedule:?}");
            }
            assert!(both_queued > 0, "some interleavings do queue both: the check is needed");
            eprintln!("{} interleavings, {both_queued} queued both webhooks", schedules.len());
        });
    }

    fn hook() -> WebhookMessage {
        let mut record = JobRecord::new(
            tailpdf_shared::JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap(),
            "a",
            ts(0),
        );
        record.apply(&JobEvent::Failed { at: ts(1), error_message: "x".into() });
        WebhookMessage {
            account: "a".into(),
            url: tailpdf_shared::messages::SecretUrl::new("https://h.example.com/hook"),
            payload: WebhookPayload::for_job(&record).unwrap().into(),
            attempt: 0,
        }
    }

    #[test]
    fn webhook_attempts_travel_in_the_message_then_dead_letter() {
        run(async {
            let (jobs, webhooks, dead) =
                (MemoryKv::default(), MemoryQueue::default(), MemoryQueue::default());
            let c = EdgeConfig { webhook_retry_delays: vec![5, 30], ..cfg() };
            let http = FakeHttp::answering(vec![status(500), status(307), Err("timed out".into())]);
            let mut current = hook();
            let id = current.payload.subject().clone();
            for (n, expected_status) in [(1, Some(500)), (2, Some(307))] {
                let v =
                    deliver_webhook(&http, &jobs, (&webhooks, &dead), &c, &current, None, ts(n))
                        .await;
                assert_eq!(v, Verdict::Ack);
                let record: WebhookDelivery =
                    crate::store::get_json(&jobs, &webhook_key(&id)).await.unwrap().unwrap();
                assert_eq!((record.attempts, record.last_status), (n as u32, expected_status));
                assert_eq!(record.delivered_at, None, "a redirect is not a delivery");
                current = webhooks.0.borrow().last().unwrap().clone();
                assert_eq!(current.attempt, n as u32);
            }
            assert_eq!(webhooks.delays(), [5, 30]);
            let v =
                deliver_webhook(&http, &jobs, (&webhooks, &dead), &c, &current, None, ts(9)).await;
            assert_eq!(v, Verdict::Ack);
            assert_eq!(dead.0.borrow().len(), 1, "after the last delay: dead-lettered");
            assert_eq!(dead.0.borrow()[0].attempt, 3);
            assert_eq!(webhooks.0.borrow().len(), 2);
        });
    }

    #[test]
    fn a_delivered_webhook_is_recorded_and_done() {
        run(async {
            let (jobs, webhooks, dead) =
                (MemoryKv::default(), MemoryQueue::default(), MemoryQueue::default());
            let http = FakeHttp::answering(vec![status(204)]);
            let h = hook();
            let v = deliver_webhook(&http, &jobs, (&webhooks, &dead), &cfg(), &h, Some("s"), ts(3))
                .await;
            assert_eq!(v, Verdict::Ack);
            let record: WebhookDelivery =
                crate::store::get_json(&jobs, &webhook_key(h.payload.subject()))
                    .await
                    .unwrap()
                    .unwrap();
            assert_eq!(
                record,
                WebhookDelivery { attempts: 1, last_status: Some(204), delivered_at: Some(ts(3)) }
            );
            assert!(webhooks.0.borrow().is_empty() && dead.0.borrow().is_empty());
        });
    }

    fn three_renderers() -> EdgeConfig {
        let mut cfg = cfg();
        cfg.renderers = ["http://r0", "http://r1", "http://r2"].map(String::from).to_vec();
        cfg
    }

    /// The origins the calls went to, in order.
    fn origins(http: &FakeHttp) -> Vec<String> {
        let sent = http.sent.borrow();
        sent.iter().map(|(url, _)| url.trim_end_matches(TAKE_PATH).to_owned()).collect()
    }

    /// With several renderers a job goes to its own first; one that does not answer, or is
    /// busy, is skipped for the next; the one that took it is named in the message, and the
    /// questions that follow go to it alone.
    #[test]
    fn push_mode_skips_a_renderer_that_does_not_answer_and_asks_the_taker_alone() {
        run(async {
            let push = Push::new(three_renderers());
            let job = queued_job(&push.jobs).await;
            let order: Vec<String> = renderers::order(&push.cfg.renderers, job.job_id.as_str())
                .into_iter()
                .map(str::to_owned)
                .collect();
            let http = FakeHttp::answering(vec![
                Err("connection refused".into()),
                status(200),
                status(200),
            ])
            .with_bodies(vec![take(&TakeAnswer::Busy { delay_secs: 3 }), take(&TakeAnswer::Taken)]);
            assert_eq!(push.job(&http, &job, 1).await, Verdict::Ack);
            assert_eq!(origins(&http), order, "each in the job's order, until one took it");
            let next = push.again.0.borrow().last().unwrap().clone();
            assert_eq!(next.taken_by.as_deref(), Some(order[2].as_str()));
            assert_eq!(next.attempt, 2, "a start counts");

            // Asked again: only the renderer that took it, even while the others answer.
            let http = FakeHttp::answering(vec![status(200)])
                .with_bodies(vec![take(&TakeAnswer::Running)]);
            assert_eq!(push.job(&http, &next, 3).await, Verdict::Ack);
            assert_eq!(origins(&http), [order[2].clone()]);
            let again = push.again.0.borrow().last().unwrap().clone();
            assert_eq!(again.taken_by, next.taken_by, "still its");

            // The taker stops answering: the next attempt goes anywhere, counted.
            let http = FakeHttp::answering(vec![Err("connection refused".into())]);
            assert_eq!(push.job(&http, &again, 5).await, Verdict::Ack);
            assert_eq!(origins(&http), [order[2].clone()], "no other renderer asked meanwhile");
            let after = push.again.0.borrow().last().unwrap().clone();
            assert_eq!((after.taken_by.as_deref(), after.attempt), (None, again.attempt + 1));
        });
    }

    fn container_pool(instances: u32) -> EdgeConfig {
        let mut cfg = cfg();
        cfg.containers = Some(crate::config::ContainerSettings {
            instances,
            edge_url: String::from("https://tailpdf.example.workers.dev"),
            sleep_after: Duration::from_secs(600),
            tabs: 2,
            start_timeout: Duration::from_secs(60),
        });
        cfg.renderers = crate::containers::origins(instances);
        cfg
    }

    /// Containers mode: each call to a renderer names the instance whose object carries it,
    /// and a busy instance sends the job on to the next, as with any list of renderers.
    #[test]
    fn containers_mode_carries_each_call_by_its_instance_s_object() {
        run(async {
            let push = Push::new(container_pool(3));
            let job = queued_job(&push.jobs).await;
            let order: Vec<String> = renderers::order(&push.cfg.renderers, job.job_id.as_str())
                .into_iter()
                .map(str::to_owned)
                .collect();
            let http = FakeHttp::answering(vec![status(200), status(200)]).with_bodies(vec![
                take(&TakeAnswer::Busy { delay_secs: 3 }),
                take(&TakeAnswer::Taken),
            ]);
            assert_eq!(push.job(&http, &job, 1).await, Verdict::Ack);
            assert_eq!(origins(&http), order[..2]);
            let names: Vec<Option<String>> = order[..2]
                .iter()
                .map(|o| crate::containers::instance_of(o).map(str::to_owned))
                .collect();
            assert!(names.iter().all(Option::is_some));
            assert_eq!(*http.instances.borrow(), names);
        });
        // Only a configured pool routes by object: the same address as a RENDERER_URL does
        // not, and neither does anything but a renderer call.
        let mut plain = cfg();
        plain.renderers = crate::containers::origins(1);
        let post = Post::to_renderer(&plain, &plain.renderers[0], TAKE_PATH, Vec::new(), ts(1));
        assert_eq!(post.instance, None);
        let pool = container_pool(2);
        let post = Post::to_renderer(&pool, &pool.renderers[1], TAKE_PATH, Vec::new(), ts(1));
        assert_eq!(post.instance.as_deref(), Some("renderer-1"));
    }

    /// Every renderer busy: the job waits as it would for one (no attempt counted, the
    /// shortest wait asked for); none answering: an attempt, as with one.
    #[test]
    fn push_mode_with_every_renderer_busy_or_gone() {
        run(async {
            let push = Push::new(three_renderers());
            let job = queued_job(&push.jobs).await;
            let busy = |secs| take(&TakeAnswer::Busy { delay_secs: secs });
            let http = FakeHttp::answering(vec![status(200), status(200), status(200)])
                .with_bodies(vec![busy(9), busy(4), busy(6)]);
            assert_eq!(push.job(&http, &job, 1).await, Verdict::Ack);
            let next = push.again.0.borrow().last().unwrap().clone();
            assert_eq!((next.attempt, next.taken_by.as_deref()), (1, None));
            assert_eq!(push.again.delays(), [4]);

            let refused = || Err::<Answer, String>("connection refused".into());
            let http = FakeHttp::answering(vec![refused(), refused(), refused()]);
            assert_eq!(push.job(&http, &next, 2).await, Verdict::Ack);
            assert_eq!(http.sent.borrow().len(), 3, "each tried once");
            assert_eq!(push.again.0.borrow().last().unwrap().attempt, 2);
        });
    }

    /// A batch's group goes to the next renderer when one does not answer.
    #[test]
    fn a_group_skips_a_renderer_that_does_not_answer() {
        run(async {
            let push = Push::new(three_renderers());
            let job = queued_job(&push.jobs).await;
            let answer =
                GroupAnswer { jobs: vec![GroupJobEnd::Ended { job_id: job.job_id.clone() }] };
            let http = FakeHttp::answering(vec![Err("connection refused".into()), status(200)])
                .with_bodies(vec![serde_json::to_vec(&answer).unwrap()]);
            let verdicts = push.group(&http, std::slice::from_ref(&job), 1).await;
            assert_eq!(verdicts, [Verdict::Ack]);
            let sent = http.sent.borrow();
            assert_eq!(sent.len(), 2);
            assert_ne!(sent[0].0, sent[1].0, "another renderer the second time");
            assert!(push.again.0.borrow().is_empty(), "ended there: nothing queued again");
        });
    }
}
