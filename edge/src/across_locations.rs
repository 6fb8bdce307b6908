//! Workers KV as Cloudflare runs it across locations, for native tests, and today's edge run
//! through it (issue 29). `wrangler dev` has one location and reads back every write at once;
//! Cloudflare's KV does not (../shared/notes/cloudflare.md):
//!
//! - a write is seen at once where it was made, elsewhere only after a delay (up to 60 s or
//!   more);
//! - a "not found" is cached where it was read, for 60 s: a key written meanwhile elsewhere
//!   stays "not found" there until the cached miss expires;
//! - one key takes at most one write a second; more are refused.
//!
//! [`Cloud`] is one namespace with a clock of its own; [`Cloud::at`] is the namespace seen from
//! one location, a [`Kv`] that every edge entry point accepts, so a test calls each "at" the
//! location where Cloudflare would run it.

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
};

use crate::store::{Kv, StoreError};

/// How long a location keeps a "not found".
pub(crate) const MISS_CACHED_MS: u64 = 60_000;
/// The least time between two writes to one key.
pub(crate) const WRITE_INTERVAL_MS: u64 = 1_000;

/// A location's name ("client", "renderer", …).
pub(crate) type Location = &'static str;

/// One KV namespace across locations.
pub(crate) struct Cloud {
    now_ms: Cell<u64>,
    /// Milliseconds before a write made at one location is seen at another.
    delay_ms: Box<dyn Fn(Location, Location) -> u64>,
    /// Every write and delete of each key, oldest first.
    writes: RefCell<HashMap<String, Vec<Write>>>,
    /// Until when a location answers "not found" for a key, without looking.
    misses: RefCell<HashMap<(Location, String), u64>>,
}

struct Write {
    at_ms: u64,
    from: Location,
    /// The value and when it expires; `None`: deleted.
    value: Option<(String, u64)>,
}

impl Cloud {
    /// Writes reach every other location `delay_ms` after they were made.
    pub(crate) fn new(delay_ms: u64) -> Self {
        Self::with_delays(move |_, _| delay_ms)
    }

    /// Writes reach location `to` from `from` after `delay(from, to)` milliseconds.
    pub(crate) fn with_delays(delay: impl Fn(Location, Location) -> u64 + 'static) -> Self {
        Self {
            now_ms: Cell::new(0),
            delay_ms: Box::new(delay),
            writes: RefCell::default(),
            misses: RefCell::default(),
        }
    }

    /// The namespace as `location` sees it.
    pub(crate) fn at(&self, location: Location) -> At<'_> {
        At { cloud: self, location }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }

    pub(crate) fn advance_ms(&self, ms: u64) {
        self.now_ms.set(self.now_ms.get() + ms);
    }

    fn visible(&self, write: &Write, to: Location, now: u64) -> bool {
        write.from == to || write.at_ms + (self.delay_ms)(write.from, to) <= now
    }

    /// The newest value of `key` `location` sees now, ignoring cached misses.
    fn seen(&self, location: Location, key: &str) -> Option<String> {
        let now = self.now_ms();
        let writes = self.writes.borrow();
        let newest = writes.get(key)?.iter().rev().find(|w| self.visible(w, location, now))?;
        match &newest.value {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            _ => None,
        }
    }
}

/// [`Cloud`] seen from one location.
pub(crate) struct At<'a> {
    cloud: &'a Cloud,
    location: Location,
}

impl At<'_> {
    fn write(&self, key: &str, value: Option<(String, u64)>) -> Result<(), StoreError> {
        let cloud = self.cloud;
        let now = cloud.now_ms();
        let mut writes = cloud.writes.borrow_mut();
        let history = writes.entry(key.to_owned()).or_default();
        if history.last().is_some_and(|last| now < last.at_ms + WRITE_INTERVAL_MS) {
            return Err(StoreError(format!("429: more than one write a second to {key}")));
        }
        history.push(Write { at_ms: now, from: self.location, value });
        // A location sees its own write at once, its cached miss included.
        cloud.misses.borrow_mut().remove(&(self.location, key.to_owned()));
        Ok(())
    }
}

impl Kv for At<'_> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let cloud = self.cloud;
        let now = cloud.now_ms();
        let cached = (self.location, key.to_owned());
        if cloud.misses.borrow().get(&cached).is_some_and(|until| *until > now) {
            return Ok(None);
        }
        let seen = cloud.seen(self.location, key);
        if seen.is_none() {
            cloud.misses.borrow_mut().insert(cached, now + MISS_CACHED_MS);
        }
        Ok(seen)
    }

    async fn put(&self, key: &str, value: &str, ttl_secs: u64) -> Result<(), StoreError> {
        assert!(ttl_secs >= 60, "KV refuses a TTL under 60 s ({key}: {ttl_secs})");
        let expires = self.cloud.now_ms() + ttl_secs * 1000;
        self.write(key, Some((value.to_owned(), expires)))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.write(key, None)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let keys: Vec<String> = self.cloud.writes.borrow().keys().cloned().collect();
        let mut listed: Vec<String> = keys
            .into_iter()
            .filter(|k| k.starts_with(prefix) && self.cloud.seen(self.location, k).is_some())
            .collect();
        listed.sort();
        Ok(listed)
    }
}

#[cfg(test)]
mod double {
    //! The double itself behaves as the notes say Cloudflare's KV does.
    use super::*;
    use crate::jobs::tests::run;

    #[test]
    fn a_write_is_seen_at_once_where_made_and_after_the_delay_elsewhere() {
        run(async {
            let cloud = Cloud::new(20_000);
            let (here, there) = (cloud.at("here"), cloud.at("there"));
            here.put("k", "v1", 60).await.unwrap();
            assert_eq!(here.get("k").await.unwrap().as_deref(), Some("v1"));
            cloud.advance_ms(19_999);
            assert_eq!(there.list("").await.unwrap(), Vec::<String>::new());
            cloud.advance_ms(1);
            assert_eq!(there.get("k").await.unwrap().as_deref(), Some("v1"));
            here.put("k", "v2", 60).await.unwrap();
            assert_eq!(there.get("k").await.unwrap().as_deref(), Some("v1"), "old until seen");
            cloud.advance_ms(20_000);
            assert_eq!(there.get("k").await.unwrap().as_deref(), Some("v2"));
            cloud.advance_ms(60_000);
            assert_eq!(there.get("k").await.unwrap(), None, "expired");
        });
    }

    #[test]
    fn a_miss_is_cached_where_read_for_a_minute() {
        run(async {
            let cloud = Cloud::new(5_000);
            let (here, there) = (cloud.at("here"), cloud.at("there"));
            assert_eq!(there.get("k").await.unwrap(), None);
            here.put("k", "v", 3600).await.unwrap();
            cloud.advance_ms(MISS_CACHED_MS - 1);
            assert_eq!(there.get("k").await.unwrap(), None, "the cached miss, long after 5 s");
            assert_eq!(here.get("k").await.unwrap().as_deref(), Some("v"));
            cloud.advance_ms(1);
            assert_eq!(there.get("k").await.unwrap().as_deref(), Some("v"));
            // Its own write clears a location's cached miss.
            assert_eq!(here.get("j").await.unwrap(), None);
            here.put("j", "w", 60).await.unwrap();
            assert_eq!(here.get("j").await.unwrap().as_deref(), Some("w"));
        });
    }

    #[test]
    fn one_write_a_second_to_a_key() {
        run(async {
            let cloud = Cloud::new(0);
            let (here, there) = (cloud.at("here"), cloud.at("there"));
            here.put("k", "1", 60).await.unwrap();
            cloud.advance_ms(999);
            assert!(there.put("k", "2", 60).await.is_err(), "from anywhere");
            assert!(here.delete("k").await.is_err());
            here.put("other", "x", 60).await.unwrap();
            cloud.advance_ms(1);
            there.put("k", "2", 60).await.unwrap();
            assert_eq!(here.get("k").await.unwrap().as_deref(), Some("2"));
        });
    }
}

#[cfg(test)]
mod jobs {
    //! A job's life across three locations: the client's (`POST /pdf`, `GET /jobs`), the
    //! renderer's (`/internal/...`) and the consumers' (webhooks, dead letters), 60 s apart.
    //! Each entry point is called as the Worker calls it there: job state through
    //! [`Routed`] (a job's keys in its object or its batch's, the rest in that location's KV).
    //!
    //! All but the idempotency test failed on the design before the job's object, where a
    //! job's keys were KV's (docs/JOBS-ACROSS-LOCATIONS.md has what each saw).
    use tailpdf_shared::{
        job::RenderResult,
        messages::{RenderJobMessage, WebhookMessage},
        JobEvent, JobId, JobStatus, Timestamp,
    };

    use super::*;
    use crate::{
        admission::SubmitHeaders,
        consumers::{deliver_webhook, Answer, Http, Post},
        events,
        job_object::{self, memory::MemoryObjects, Ends, ObjectEnds, Routed},
        jobs::{
            self,
            tests::{acct, cfg, run},
            Submission,
        },
        store::memory::MemoryQueue,
    };

    const CLIENT: Location = "client";
    const RENDERER: Location = "renderer";
    const CONSUMERS: Location = "consumers";

    /// KV across the locations, the jobs' objects (one each, wherever called from) and the
    /// account's (`objects.limiter`).
    struct World {
        cloud: Cloud,
        objects: MemoryObjects,
    }

    /// Cloudflare's worst case the notes give: 60 s between locations.
    fn world() -> World {
        World { cloud: Cloud::new(60_000), objects: MemoryObjects::default() }
    }

    impl World {
        /// Job state as the Worker sees it at `location`.
        fn jobs(&self, location: Location) -> Routed<At<'_>, &MemoryObjects> {
            Routed { kv: self.cloud.at(location), objects: &self.objects }
        }

        fn now(&self) -> Timestamp {
            let secs = i64::try_from(self.cloud.now_ms() / 1000).unwrap();
            Timestamp::from_unix(1_764_230_000 + secs).unwrap()
        }

        /// `POST /pdf` at `location`: the job's id and its queue message (none for a replay,
        /// which queues nothing).
        async fn submit(
            &self,
            location: Location,
            content: &str,
            idempotency_key: Option<&str>,
        ) -> (JobId, Option<RenderJobMessage>) {
            let queue = MemoryQueue::default();
            let body = serde_json::json!({
                "content": content, "async": true,
                "upload_url": "https://b.s3.amazonaws.com/a.pdf?X-Amz-Signature=abc",
                "webhook_url": "https://api.example.com/hook",
            })
            .to_string();
            let headers = SubmitHeaders { idempotency_key, no_store: false, trace: None };
            let stores = (&self.jobs(location), &queue, &self.objects.limiter);
            let submitted =
                jobs::submit(stores, &cfg(), &acct("a"), headers, body.as_bytes(), self.now())
                    .await
                    .unwrap();
            let (Submission::Accepted(a) | Submission::Replayed(a)) = submitted.submission else {
                unreachable!("an async job")
            };
            let message = queue.0.borrow().first().cloned();
            (a.job_id, message)
        }

        /// `POST /pdf/batch` at `location`, every document and the batch with a webhook: the
        /// batch's id, its documents' ids and their queue messages (none for a replay).
        async fn submit_batch(
            &self,
            location: Location,
            contents: &[&str],
            idempotency_key: Option<&str>,
        ) -> (JobId, Vec<JobId>, Vec<RenderJobMessage>) {
            let queue = MemoryQueue::default();
            let documents: Vec<_> = contents
                .iter()
                .map(|content| {
                    serde_json::json!({
                        "content": content,
                        "upload_url": "https://b.s3.amazonaws.com/a.pdf?X-Amz-Signature=abc",
                        "webhook_url": "https://api.example.com/hook",
                    })
                })
                .collect();
            let body = serde_json::json!({
                "documents": documents, "webhook_url": "https://api.example.com/batch",
            })
            .to_string();
            let headers = SubmitHeaders { idempotency_key, no_store: false, trace: None };
            let stores = (&self.jobs(location), &queue, &self.objects.limiter);
            let submitted = crate::batches::submit_batch(
                stores,
                &cfg(),
                &acct("a"),
                headers,
                body.as_bytes(),
                self.now(),
            )
            .await
            .unwrap();
            let (crate::batches::BatchSubmission::Accepted(a)
            | crate::batches::BatchSubmission::Replayed(a)) = submitted.submission;
            let ids = a.jobs.iter().map(|j| j.job_id.clone()).collect();
            let messages = queue.0.borrow().clone();
            (a.batch_id, ids, messages)
        }

        /// A renderer's event, at `location`: the edge's answer's status.
        async fn event(&self, location: Location, id: &JobId, event: &JobEvent) -> u16 {
            let body = serde_json::to_vec(event).unwrap();
            let jobs = self.jobs(location);
            match job_object::apply_event(&jobs.objects, &cfg(), id.as_str(), &body).await {
                Ok(_) => 200,
                Err(e) => e.status(),
            }
        }

        /// `GET /jobs/{id}` at `location`.
        async fn status(&self, location: Location, id: &JobId) -> JobStatus {
            let jobs = self.jobs(location);
            let view = jobs::job_status(&jobs, &cfg(), &acct("a"), id.as_str(), self.now()).await;
            view.unwrap().status
        }
    }

    fn completed(at: Timestamp) -> JobEvent {
        let result =
            RenderResult { file_size_bytes: 9, render_duration_ms: 1, upload_duration_ms: 1 };
        JobEvent::Completed { at, result }
    }

    #[test]
    fn a_renderer_elsewhere_gets_the_spec_of_a_job_too_large_for_its_message() {
        run(async {
            let world = world();
            let large = format!("<p>{}</p>", "word ".repeat(20_000));
            let (id, message) = world.submit(CLIENT, &large, None).await;
            assert!(message.unwrap().spec.is_none(), "the spec does not travel in the message");
            world.cloud.advance_ms(1_000);
            // Was 404 from KV there, which the renderer takes as "the job already ended": the
            // job stayed pending until it expired, no PDF, no webhook.
            let spec = jobs::job_spec(&world.jobs(RENDERER), id.as_str()).await;
            assert!(spec.unwrap().content.contains("word word"));
        });
    }

    #[test]
    fn a_renderer_s_events_are_accepted_where_it_runs() {
        run(async {
            let world = world();
            let (id, _) = world.submit(CLIENT, "<p>x</p>", None).await;
            world.cloud.advance_ms(1_000);
            let processing = JobEvent::Processing { at: world.now() };
            // Was 404, and 404 again 25 s later (KV's cached miss).
            assert_eq!(world.event(RENDERER, &id, &processing).await, 200);
            assert_eq!(world.status(CLIENT, &id).await, JobStatus::Processing);
        });
    }

    #[test]
    fn two_ends_at_two_locations_give_one_outcome_and_one_webhook() {
        run(async {
            let world = world();
            let (id, _) = world.submit(CLIENT, "<p>x</p>", None).await;
            world.cloud.advance_ms(60_000);
            // The renderer's `completed` near it, the dead-letter `failed` at the consumers'
            // 1.5 s later; each webhook delivered a second after by a consumer where its end
            // was decided. Both ends used to win at their own location: two webhooks.
            assert_eq!(world.event(RENDERER, &id, &completed(world.now())).await, 200);
            world.cloud.advance_ms(1_500);
            let c = cfg();
            let consumers = world.jobs(CONSUMERS);
            let ends = ObjectEnds(&consumers.objects);
            let ack = ends.end(&c, &id, &events::gave_up(world.now())).await.unwrap();
            assert_eq!((ack.applied, ack.status), (false, JobStatus::Completed), "too late");
            world.cloud.advance_ms(1_000);
            let http = CountingHttp::default();
            let (retries, dead) = (MemoryQueue::default(), MemoryQueue::default());
            let queued: Vec<WebhookMessage> = world.objects.webhooks.0.borrow().clone();
            assert_eq!(queued.len(), 1, "one webhook queued");
            for (hook, at) in queued.iter().zip([RENDERER, CONSUMERS]) {
                let jobs = world.jobs(at);
                deliver_webhook(&http, &jobs, (&retries, &dead), &c, hook, None, world.now()).await;
            }
            assert_eq!(http.0.get(), 1, "webhooks delivered");
            for location in [CLIENT, RENDERER, CONSUMERS] {
                assert_eq!(world.status(location, &id).await, JobStatus::Completed, "{location}");
            }
        });
    }

    /// Failed on the KV record (read, then written): the same key at two locations made two
    /// jobs. The account's object keeps the keys now (crate::idempotency).
    #[test]
    fn an_idempotent_retry_at_another_location_gives_the_same_job() {
        run(async {
            let world = world();
            let (first, _) = world.submit(CLIENT, "<p>x</p>", Some("order-1")).await;
            world.cloud.advance_ms(2_000);
            // The client's retry lands at another location (a new connection, another route).
            let (second, _) = world.submit(RENDERER, "<p>x</p>", Some("order-1")).await;
            assert_eq!(first, second, "one job for one Idempotency-Key");
        });
    }

    #[test]
    fn get_jobs_at_the_client_shows_each_transition_within_a_second() {
        run(async {
            let world = world();
            let (id, _) = world.submit(CLIENT, "<p>x</p>", None).await;
            world.cloud.advance_ms(60_000);
            let processing = JobEvent::Processing { at: world.now() };
            assert_eq!(world.event(RENDERER, &id, &processing).await, 200);
            // Was `pending` until the renderer-location's KV write arrived (up to 60 s).
            world.cloud.advance_ms(1_000);
            assert_eq!(world.status(CLIENT, &id).await, JobStatus::Processing);
            assert_eq!(world.event(RENDERER, &id, &completed(world.now())).await, 200);
            assert_eq!(world.status(CLIENT, &id).await, JobStatus::Completed, "at once");
        });
    }

    /// A batch's documents keep their state in their batch's object: near the renderer, a
    /// second after the batch was made near the client, their spec is served and their events
    /// accepted (with KV, 503 "not here yet" for a minute or more); two ends of one document
    /// at two locations give one outcome and one webhook; and the client sees each move.
    #[test]
    fn a_batch_s_documents_are_served_near_the_renderer_at_once_and_end_once() {
        run(async {
            let world = world();
            let queue = MemoryQueue::default();
            let large = format!("<p>{}</p>", "word ".repeat(15_000));
            let upload = "https://b.s3.amazonaws.com/a.pdf?X-Amz-Signature=x";
            let body = serde_json::json!({"documents": [
                {"content": large, "upload_url": upload,
                 "webhook_url": "https://hooks.example.com/doc"},
                {"content": "<p>small</p>", "upload_url": upload},
            ]})
            .to_string();
            let stores = (&world.jobs(CLIENT), &queue, &world.objects.limiter);
            let headers = SubmitHeaders::default();
            let batch = crate::batches::submit_batch(
                stores,
                &cfg(),
                &acct("a"),
                headers,
                body.as_bytes(),
                world.now(),
            )
            .await
            .unwrap();
            let crate::batches::BatchSubmission::Accepted(accepted) = batch.submission else {
                unreachable!()
            };
            let id = accepted.jobs[0].job_id.clone();
            world.cloud.advance_ms(1_000);
            let spec = jobs::job_spec(&world.jobs(RENDERER), id.as_str()).await;
            assert!(spec.unwrap().content.contains("word"));
            let processing = JobEvent::Processing { at: world.now() };
            assert_eq!(world.event(RENDERER, &id, &processing).await, 200);
            world.cloud.advance_ms(1_000);
            assert_eq!(world.status(CLIENT, &id).await, JobStatus::Processing);
            // The renderer's `completed` near it, a dead letter's `failed` at the consumers'.
            assert_eq!(world.event(RENDERER, &id, &completed(world.now())).await, 200);
            let consumers = world.jobs(CONSUMERS);
            let ends = ObjectEnds(&consumers.objects);
            let ack = ends.end(&cfg(), &id, &events::gave_up(world.now())).await.unwrap();
            assert_eq!((ack.applied, ack.status), (false, JobStatus::Completed), "too late");
            let hooks = world.objects.webhooks.0.borrow().clone();
            assert_eq!(hooks.len(), 1, "one webhook: {hooks:?}");
            world.cloud.advance_ms(1_000);
            for at in [CLIENT, RENDERER, CONSUMERS] {
                assert_eq!(world.status(at, &id).await, JobStatus::Completed);
            }
        });
    }

    /// A small deterministic generator (xorshift64*): the same interleavings every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// In `0..n`.
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// Of the 1,000 jobs, the first are single; the rest documents of batches of this many.
    const SINGLES: usize = 700;
    const BATCH_DOCUMENTS: usize = 10;

    /// Job `n`'s batch and index, when it is a batch's document.
    fn document_of(n: usize) -> Option<(usize, usize)> {
        let d = n.checked_sub(SINGLES)?;
        Some((d / BATCH_DOCUMENTS, d % BATCH_DOCUMENTS))
    }

    /// What happens to a job, and when (ms on the world's clock).
    #[derive(Debug, Clone)]
    enum Step {
        /// The client's `POST /pdf` (and, for some, its retry elsewhere with the same key).
        Submit,
        /// The renderer fetches the spec (a job too large for its message).
        Spec,
        /// The renderer reports an event (maybe twice, maybe late).
        Event(JobEvent),
        /// The dead-letter consumer gives up on the job.
        GiveUp,
    }

    /// 1,000 jobs (700 single, 300 documents of 30 batches), client, renderer and consumers at
    /// three locations whose KV is 30 to 60 s apart; a third with specs over the queue message
    /// (a batch's: in a pack, or on their own over 256 KiB); events repeated and late; one job
    /// in ten given up on by the dead-letter consumer at a time of its own (before, during or
    /// after its render); one in ten without a renderer at all; one job or batch in ten
    /// submitted twice with one `Idempotency-Key`, at two locations. Every job ends once, with
    /// one webhook, every batch with one `batch.completed`, and after every event `GET /jobs`
    /// at each location shows the job at least as far as the event took it, at once.
    #[test]
    fn a_thousand_jobs_across_three_locations_end_once_each_with_one_webhook() {
        run(async {
            let delays = |a: Location, b: Location| match (a.min(b), a.max(b)) {
                (x, y) if x == y => 0,
                ("client", "renderer") => 60_000,
                ("client", "consumers") => 30_000,
                _ => 45_000,
            };
            let world =
                World { cloud: Cloud::with_delays(delays), objects: MemoryObjects::default() };
            let mut rng = Rng(0x2900_1000);
            let large = format!("<p>{}</p>", "word ".repeat(15_000));
            // A batch's document over 256 KiB keeps its spec on its own, not in a pack.
            let huge = format!("<p>{}</p>", "word ".repeat(60_000));
            let mut steps: Vec<(u64, usize, Step)> = Vec::new();
            let mut plans = Vec::new();
            let (mut large_specs, mut replays, mut without_renderer) = (0, 0, 0);
            let mut start = 0;
            let mut batch_start = 0;
            for n in 0..1_000_usize {
                start += rng.below(500);
                let is_large = rng.chance(33);
                let keyed = rng.chance(10);
                plans.push((is_large, keyed));
                match document_of(n) {
                    None => steps.push((start, n, Step::Submit)),
                    // A batch's documents are all made by its first one's submission.
                    Some((_, 0)) => {
                        batch_start = start;
                        steps.push((start, n, Step::Submit));
                    }
                    Some(_) => start = batch_start,
                }
                let mut at = start + 1_000 + rng.below(5_000);
                if rng.chance(10) {
                    // No renderer ever ends it: only the dead-letter consumer will.
                    without_renderer += 1;
                    steps.push((at + 60_000, n, Step::GiveUp));
                    continue;
                }
                if is_large {
                    large_specs += 1;
                    steps.push((at, n, Step::Spec));
                }
                let failed = rng.chance(10);
                let events: Vec<JobEvent> = if failed {
                    vec![
                        JobEvent::Processing { at: world.now() },
                        JobEvent::Failed {
                            at: world.now(),
                            error_message: String::from("Render failed: x"),
                        },
                    ]
                } else {
                    vec![
                        JobEvent::Processing { at: world.now() },
                        JobEvent::Uploading { at: world.now() },
                        completed(world.now()),
                    ]
                };
                for event in events {
                    at += rng.below(3_000);
                    steps.push((at, n, Step::Event(event.clone())));
                    if rng.chance(20) {
                        // Repeated: its answer was lost, or the renderer restarted.
                        steps.push((at + rng.below(90_000), n, Step::Event(event)));
                    }
                }
                if rng.chance(10) {
                    steps.push((start + 1 + rng.below(20_000), n, Step::GiveUp));
                }
            }
            // In time order; a job's submission first at its instant.
            steps.sort_by_key(|(at, n, step)| (*at, *n, !matches!(step, Step::Submit)));
            let (c, dlq_webhooks) = (cfg(), MemoryQueue::<WebhookMessage>::default());
            let mut seen = [(0_u32, 0_u32); 3];
            let mut ids: Vec<Option<JobId>> = vec![None; plans.len()];
            let mut batch_ids = Vec::new();
            for (at, n, step) in steps {
                world.cloud.advance_ms(at.saturating_sub(world.cloud.now_ms()));
                let reached = match step {
                    Step::Submit if document_of(n).is_some() => {
                        let documents = n..n + BATCH_DOCUMENTS;
                        let contents: Vec<&str> = documents
                            .clone()
                            .map(|d| match plans[d].0 {
                                true if d % 2 == 0 => huge.as_str(),
                                true => large.as_str(),
                                false => "<p>x</p>",
                            })
                            .collect();
                        let keyed = plans[n].1;
                        let key = format!("batch-{n}");
                        let key = keyed.then_some(key.as_str());
                        let (batch, made, messages) =
                            world.submit_batch(CLIENT, &contents, key).await;
                        for (d, message) in documents.clone().zip(&messages) {
                            assert_eq!(message.spec.is_none(), plans[d].0, "{d}");
                        }
                        if keyed {
                            let (again, _, none) =
                                world.submit_batch(CONSUMERS, &contents, key).await;
                            assert_eq!((again, none.len()), (batch.clone(), 0), "one batch");
                            replays += 1;
                        }
                        for (d, id) in documents.zip(made) {
                            ids[d] = Some(id);
                        }
                        batch_ids.push(batch);
                        continue;
                    }
                    Step::Submit => {
                        let (is_large, keyed) = plans[n];
                        let content = if is_large { large.as_str() } else { "<p>x</p>" };
                        let key = format!("order-{n}");
                        let (id, message) =
                            world.submit(CLIENT, content, keyed.then_some(key.as_str())).await;
                        assert_eq!(message.unwrap().spec.is_none(), is_large);
                        if keyed {
                            // The client's retry, at another location.
                            let (again, _) = world.submit(RENDERER, content, Some(&key)).await;
                            assert_eq!(again, id, "one job for one key");
                            replays += 1;
                        }
                        ids[n] = Some(id);
                        continue;
                    }
                    Step::Spec => {
                        // A 404 means the job has ended (given up on first): never "not yet".
                        let id = ids[n].as_ref().unwrap();
                        let spec = jobs::job_spec(&world.jobs(RENDERER), id.as_str()).await;
                        let ended = world.status(RENDERER, id).await.is_terminal();
                        assert!(spec.is_ok() || ended, "{id}: {:?}", spec.err());
                        continue;
                    }
                    Step::Event(event) => {
                        let id = ids[n].as_ref().unwrap();
                        let body = serde_json::to_vec(&event).unwrap();
                        let jobs = world.jobs(RENDERER);
                        let ack =
                            job_object::apply_event(&jobs.objects, &c, id.as_str(), &body).await;
                        ack.unwrap_or_else(|e| panic!("{id}: {e:?}")).status
                    }
                    Step::GiveUp => {
                        let id = ids[n].as_ref().unwrap();
                        let consumers = world.jobs(CONSUMERS);
                        let ends = ObjectEnds(&consumers.objects);
                        let ack = ends.end(&c, id, &events::gave_up(world.now())).await;
                        ack.unwrap_or_else(|e| panic!("{id}: {e:?}")).status
                    }
                };
                // Within a second, wherever it is asked.
                let id = ids[n].as_ref().unwrap();
                world.cloud.advance_ms(1_000);
                for (i, location) in [CLIENT, RENDERER, CONSUMERS].into_iter().enumerate() {
                    let shown = world.status(location, id).await;
                    seen[i].0 += 1;
                    seen[i].1 += u32::from(shown.rank() >= reached.rank());
                }
            }
            let ids: Vec<JobId> = ids.into_iter().map(Option::unwrap).collect();
            assert!(dlq_webhooks.0.borrow().is_empty(), "webhooks are queued by the objects");
            // Every job ended, once, the same everywhere.
            let mut ended = std::collections::HashMap::new();
            for id in &ids {
                let statuses: Vec<JobStatus> = [CLIENT, RENDERER, CONSUMERS]
                    .iter()
                    .map(|l| world.status(l, id))
                    .collect::<futures::future::JoinAll<_>>()
                    .await;
                assert!(statuses[0].is_terminal(), "{id} lost: {statuses:?}");
                assert!(statuses.iter().all(|s| *s == statuses[0]), "{id}: {statuses:?}");
                ended.insert(id.clone(), statuses[0]);
            }
            // One webhook each, agreeing with the end, delivered by consumers anywhere.
            let http = CountingHttp::default();
            let (retries, dead) = (MemoryQueue::default(), MemoryQueue::default());
            let queued: Vec<WebhookMessage> = world.objects.webhooks.0.borrow().clone();
            let mut per_job = std::collections::HashMap::new();
            let mut per_batch = std::collections::HashMap::new();
            for hook in &queued {
                let at = [CONSUMERS, RENDERER, CLIENT][rng.below(3) as usize];
                let before = http.0.get();
                let jobs = world.jobs(at);
                deliver_webhook(&http, &jobs, (&retries, &dead), &c, hook, None, world.now()).await;
                let sent = http.0.get() - before;
                match hook.payload.job() {
                    Some(job) => {
                        assert!(job.agrees_with(Some(ended[&job.job_id])), "{}", job.job_id);
                        *per_job.entry(job.job_id.clone()).or_insert(0) += sent;
                    }
                    None => *per_batch.entry(hook.payload.subject().clone()).or_insert(0) += sent,
                }
            }
            assert_eq!(per_job.len(), 1_000, "a webhook for every job");
            assert!(per_job.values().all(|n| *n == 1), "one webhook each");
            assert_eq!(per_batch.len(), batch_ids.len(), "a batch.completed for every batch");
            assert!(per_batch.values().all(|n| *n == 1), "one batch.completed each");
            let figures: Vec<String> = [CLIENT, RENDERER, CONSUMERS]
                .iter()
                .zip(seen)
                .map(|(l, (asked, ok))| format!("{l} {ok}/{asked}"))
                .collect();
            eprintln!(
                "1,000 jobs, {} of them documents of {} batches ({large_specs} specs stored, \
                 {replays} replays at another location, \
                 {without_renderer} ended by the dead-letter consumer alone): 0 lost, one end \
                 and one webhook each; GET /jobs within 1 s of each event showed it at {}",
                1_000 - SINGLES,
                batch_ids.len(),
                figures.join(", ")
            );
            for (asked, ok) in seen {
                assert_eq!(ok, asked, "GET /jobs behind an event");
            }
        });
    }

    /// Answers every webhook 200 and counts them.
    #[derive(Default)]
    struct CountingHttp(Cell<usize>);

    impl Http for CountingHttp {
        async fn post(&self, _: Post) -> Result<Answer, String> {
            self.0.set(self.0.get() + 1);
            Ok(Answer { status: 200, retry_after: None })
        }

        async fn post_reading(&self, post: Post) -> Result<(Answer, Vec<u8>), String> {
            Ok((self.post(post).await?, Vec::new()))
        }
    }
}
