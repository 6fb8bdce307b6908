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
    messages::{RenderJobMessage, WebhookMessage},
    signing::INTERNAL_SIGNATURE_HEADER,
    JobEvent, JobStatus, Timestamp,
};

use crate::{
    api::{self, renderer_call},
    config::EdgeConfig,
    delivery,
    limits::Limiter,
    store::{get_json, put_json, stage_key, webhook_key, Kv, Queue},
};

/// An outgoing HTTP POST within a deadline, never following redirects.
#[allow(async_fn_in_trait)] // the Worker is single-threaded: no Send bound wanted
pub trait Http {
    async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, String>;
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

/// How long a push-mode delivery may hold the renderer: longer than any one job can take.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(600);
/// Wait before a message comes back when storage or a queue failed.
const STORAGE_RETRY_SECS: u32 = 30;

/// Push mode: one `render-jobs` message to the renderer, held until the job has ended there.
/// The renderer learns the delivery's real number (`attempt`), so its `--max-attempts` applies
/// and a failure that stays fails the job with its own cause. When no renderer takes the job
/// `cfg.render_max_attempts` times, the job fails here, saying why.
pub async fn push_render_job(
    http: &impl Http,
    render_jobs: &impl Queue<RenderJobMessage>,
    // Where a job that fails here records its end.
    (jobs, webhooks, limiter): (&impl Kv, &impl Queue<WebhookMessage>, &impl Limiter),
    cfg: &EdgeConfig,
    job: &RenderJobMessage,
    now: Timestamp,
) -> Verdict {
    let attempt = job.attempt.max(1);
    let body = serde_json::to_vec(&RenderJobMessage { attempt, ..job.clone() }).unwrap_or_default();
    let (url, signature) = renderer_call(cfg, "POST", "/jobs", &body, now.unix());
    let headers = [
        ("Content-Type", String::from("application/json")),
        (INTERNAL_SIGNATURE_HEADER, signature),
    ];
    let (why, delay_secs) = match http.post(&url, &headers, body, PUSH_TIMEOUT).await {
        Ok(answer) if answer.status == 200 => return Verdict::Ack,
        Ok(Answer { status: 503, retry_after }) => (
            String::from("every renderer stayed busy"),
            retry_after.unwrap_or(cfg.render_retry_delay_secs),
        ),
        Ok(Answer { status, retry_after }) => (
            format!("the renderer answered {status}"),
            retry_after.unwrap_or(cfg.render_retry_delay_secs),
        ),
        Err(_) => (String::from("no renderer could be reached"), cfg.render_retry_delay_secs),
    };
    if attempt >= cfg.render_max_attempts {
        let error_message = format!(
            "Render failed: the job was not rendered after {attempt} attempts ({why}); submit \
             it again."
        );
        let event = JobEvent::Failed { at: now, error_message };
        return match api::apply(jobs, webhooks, limiter, cfg, &job.job_id, &event).await {
            Ok(_) => Verdict::Ack,
            // Expired meanwhile: nothing left to fail.
            Err(e) if e.status() == 404 => Verdict::Ack,
            Err(_) => Verdict::Retry { delay_secs: STORAGE_RETRY_SECS },
        };
    }
    let next = RenderJobMessage { attempt: attempt + 1, ..job.clone() };
    match render_jobs.send_after(&next, delay_secs.max(1)).await {
        Ok(()) => Verdict::Ack,
        Err(_) => Verdict::Retry { delay_secs: delay_secs.max(1) },
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
    // Only the end key decides, so only it is read.
    let end_key = stage_key(&hook.payload.job_id, JobStatus::Completed);
    match get_json::<JobEvent>(jobs, &end_key).await {
        Ok(end) if !hook.payload.agrees_with(end.as_ref().map(JobEvent::status)) => {
            return Verdict::Ack;
        }
        Ok(_) => {}
        Err(_) => return Verdict::Retry { delay_secs: STORAGE_RETRY_SECS },
    }
    let attempt = hook.attempt + 1;
    let request = delivery::request(hook, secret, now.unix());
    let status = http
        .post(&request.url, &request.headers, request.body.into_bytes(), cfg.webhook_timeout)
        .await
        .ok()
        .map(|answer| answer.status);
    // The record is a view for GET /jobs; the count it shows comes from the message.
    let state = delivery::record(attempt, status, now);
    let _ = put_json(jobs, &webhook_key(&hook.payload.job_id), &state, cfg.job_ttl_done_secs).await;
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
        api::tests::{acct, cfg, lim, queued_job, run, ts},
        store::memory::{MemoryKv, MemoryQueue},
    };
    use tailpdf_shared::{job::WebhookDelivery, webhook::WebhookPayload, JobRecord};

    /// Answers each call with the next of `answers`; records what was sent.
    #[derive(Default)]
    struct FakeHttp {
        answers: RefCell<Vec<Result<Answer, String>>>,
        sent: RefCell<Vec<(String, Vec<u8>)>>,
    }

    impl FakeHttp {
        fn answering(answers: Vec<Result<Answer, String>>) -> Self {
            Self { answers: RefCell::new(answers), sent: RefCell::default() }
        }
    }

    impl Http for FakeHttp {
        async fn post(
            &self,
            url: &str,
            _headers: &[(&str, String)],
            body: Vec<u8>,
            _timeout: Duration,
        ) -> Result<Answer, String> {
            self.sent.borrow_mut().push((url.to_owned(), body));
            self.answers.borrow_mut().remove(0)
        }
    }

    fn status(status: u16) -> Result<Answer, String> {
        Ok(Answer { status, retry_after: None })
    }

    #[test]
    fn push_mode_counts_attempts_in_the_message_and_the_renderer_sees_them() {
        run(async {
            let (jobs, render_jobs, webhooks) =
                (MemoryKv::default(), MemoryQueue::default(), MemoryQueue::default());
            let message = queued_job(&jobs).await;
            let http = FakeHttp::answering(vec![
                Ok(Answer { status: 503, retry_after: Some(7) }),
                Err("connection refused".into()),
                status(200),
            ]);
            let c = cfg();
            let mut current = message;
            for expected in [1, 2] {
                let verdict = push_render_job(
                    &http,
                    &render_jobs,
                    (&jobs, &webhooks, &lim()),
                    &c,
                    &current,
                    ts(1),
                )
                .await;
                assert_eq!(verdict, Verdict::Ack, "the next attempt is queued first");
                let sent: RenderJobMessage =
                    serde_json::from_slice(&http.sent.borrow().last().unwrap().1).unwrap();
                assert_eq!(sent.attempt, expected, "the renderer is told the real attempt");
                current = render_jobs.0.borrow().last().unwrap().clone();
                assert_eq!(current.attempt, expected + 1);
            }
            assert_eq!(render_jobs.delays(), [7, c.render_retry_delay_secs], "Retry-After first");
            let verdict = push_render_job(
                &http,
                &render_jobs,
                (&jobs, &webhooks, &lim()),
                &c,
                &current,
                ts(2),
            )
            .await;
            assert_eq!(verdict, Verdict::Ack);
            assert_eq!(render_jobs.0.borrow().len(), 2, "done: nothing more queued");
        });
    }

    #[test]
    fn push_mode_fails_the_job_with_its_cause_after_the_last_attempt() {
        run(async {
            let (jobs, render_jobs, webhooks) =
                (MemoryKv::default(), MemoryQueue::default(), MemoryQueue::default());
            let mut message = queued_job(&jobs).await;
            let c = EdgeConfig { render_max_attempts: 3, ..cfg() };
            message.attempt = 3;
            let http = FakeHttp::answering(vec![Err("connection refused".into())]);
            let verdict = push_render_job(
                &http,
                &render_jobs,
                (&jobs, &webhooks, &lim()),
                &c,
                &message,
                ts(5),
            )
            .await;
            assert_eq!(verdict, Verdict::Ack);
            assert!(render_jobs.0.borrow().is_empty(), "not queued again");
            let view = api::job_status(&jobs, &c, &acct("a"), message.job_id.as_str(), ts(6))
                .await
                .unwrap();
            assert_eq!(view.status, JobStatus::Failed);
            let why = view.error_message.unwrap();
            assert!(why.contains("after 3 attempts (no renderer could be reached)"), "{why}");
            assert_eq!(webhooks.0.borrow().len(), 1, "render.failed is sent");
        });
    }

    #[test]
    fn a_queue_that_refuses_the_next_attempt_gets_the_message_back() {
        run(async {
            let (jobs, webhooks) = (MemoryKv::default(), MemoryQueue::default());
            let render_jobs = MemoryQueue::<RenderJobMessage>::failing();
            let message = queued_job(&jobs).await;
            let http = FakeHttp::answering(vec![status(503)]);
            let verdict = push_render_job(
                &http,
                &render_jobs,
                (&jobs, &webhooks, &lim()),
                &cfg(),
                &message,
                ts(1),
            )
            .await;
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
            api::apply(&base, &webhooks, &lim(), &c, &id, &processing).await.unwrap();
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
                let a = api::apply(&kv, &queued, &limiter, &c, &id, &completed);
                let b = api::give_up(&kv, &queued, &limiter, &c, &id, ts(3));
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
                    api::job_status(&jobs, &c, &acct("a"), id.as_str(), ts(4)).await.unwrap();
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
            payload: WebhookPayload::for_job(&record).unwrap(),
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
            let id = current.payload.job_id.clone();
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
                crate::store::get_json(&jobs, &webhook_key(&h.payload.job_id))
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
}
