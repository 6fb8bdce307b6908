//! What one job costs on Cloudflare, counted from the edge's own code (issue 29, "cost per
//! job"): every invocation of a job's life and what each one asks of KV, the Durable Objects,
//! Queues and the network, with every key in KV (before) and in the jobs' objects (after).
//!
//!   cargo test -p tailpdf-edge --lib costs -- --nocapture
//!
//! prints the tables of BENCHMARKS.md ("Cost per job"); run it again after a change of design
//! and the tables follow.
//!
//! The real entry points run, natively, as `worker_glue` calls them, on the test doubles of
//! KV, Queues and the objects, each wrapped here in a counter ([`CountingKv`],
//! [`CountingQueue`], [`CountingLimiter`], [`CountingObjects`], [`ScriptedHttp`]); a [`Meter`]
//! keeps the counts per invocation: the Worker's (each HTTP request, each delivery of a queue
//! consumer) and each object's (each request to a job's or batch's object or to the account's,
//! and an object's alarm).
//!
//! The two designs:
//! - **after** (this tree): a single job's keys in its object, a batch's and its documents' in
//!   the batch's (`Routed`, `job_object::handle`), events applied there, `Idempotency-Key`s in
//!   the account's object (claimed, then committed);
//! - **before** (commit 39e5cc9): every key in KV, events applied by the Worker, and an
//!   `Idempotency-Key` a KV record, read before the job is made and written after (39e5cc9's
//!   `api::idempotency` and `submit_job`). Counted by running this tree's functions with job
//!   state in plain KV (the path `Ends for (&K, &Q, &L)` keeps for native tests) and each
//!   idempotency call counted as the KV operation 39e5cc9 made instead ([`CountingLimiter`]).
//!   39e5cc9's own code, run natively on the same flows, made the same KV operations per
//!   invocation (checked on 2026-12-07 at 0ba23fc; a change of these functions' KV path would
//!   need that check again).
//!
//! What is assumed, as the tables say: push mode (wrangler.toml's consumers), a render that
//! ends within one `PUSH_CHECK_SECS` (the message comes back once), the webhook delivered at
//! its first attempt, each queue delivery of a single job's message a batch of one (a busy
//! queue delivers up to `max_batch_size` at once: fewer invocations), a batch's documents in
//! one delivery, [`POLLS`] `GET /jobs` per single job and [`BATCH_POLLS`] `GET /batches/{id}`
//! per batch, the account's limits from wrangler.toml's `[vars]`. An object's storage is
//! counted in rows as Cloudflare bills SQLite-backed objects (a key read is a row read, a key
//! written or deleted a row written; `setAlarm` a row written); the account object's rows are
//! estimated from `limiter_object.rs`, which runs only on wasm; the alarm's `deleteAll()` is
//! counted as one row written per key it removes (an upper bound: its billing is not
//! documented).

use std::{cell::RefCell, collections::VecDeque, fmt::Write as _, future::Future};

use serde::Serialize;
use tailpdf_shared::{
    batch::BatchAccepted,
    job::RenderResult,
    limits::INLINE_SPEC_MAX_BYTES,
    messages::{GroupAnswer, GroupJobEnd, RenderJobMessage, TakeAnswer, WebhookMessage},
    JobEvent, JobId, JobStatus, Timestamp,
};

use crate::{
    admission::{self, SubmitHeaders},
    batches::{self, BatchSubmission},
    config::EdgeConfig,
    consumers::{self, Answer, Http, Post, Verdict},
    events,
    idempotency::{IdempotencyAnswer, IdempotencyRequest},
    job_object::{
        self, memory::MemoryObjects, JobObjects, ObjectAnswer, ObjectEnds, ObjectRequest, Routed,
    },
    jobs::{self, Submission},
    limits::{
        admit_in_turn, tests::MemoryLimiter, Admit, Admitted, BatchRequest, BatchSnapshot,
        LimitAnswer, LimitRequest, Limiter,
    },
    store::{
        api_key_key,
        memory::{MemoryKv, MemoryQueue},
        put_json, Account, Kv, Queue, StoreError,
    },
};

/// `GET /jobs/{id}` calls a single job's client makes (one while it runs, one after its
/// webhook, say; a client that waits for the webhook alone makes none).
const POLLS: usize = 2;
/// `GET /batches/{id}` calls per batch.
const BATCH_POLLS: usize = 2;
/// Documents of the batch counted (its figures are per document).
const BATCH_DOCUMENTS: usize = 10;
/// Subrequests an invocation may make, on the Free plan and by default on Workers Paid: every
/// KV operation, object request, queue send and fetch is one (workers/platform/limits).
const FREE_SUBREQUESTS: u32 = 50;
const PAID_SUBREQUESTS: u32 = 10_000;

// ------------------------------------------------------------------ counting ----

/// Where code runs: each is an invocation Cloudflare bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Runs {
    /// The Worker: an HTTP request or a queue consumer's delivery (a Workers request).
    #[default]
    Worker,
    /// A single job's object, or a batch's (a Durable Object request).
    JobObject,
    /// The account's object: limits, batch progress, `Idempotency-Key`s (a Durable Object
    /// request).
    AccountObject,
}

/// What one invocation did.
#[derive(Debug, Clone, Default)]
struct Invocation {
    runs: Runs,
    what: String,
    /// When it began, and within how many others (0: the Worker's, or an alarm).
    seq: usize,
    depth: usize,
    kv_reads: u32,
    kv_writes: u32,
    kv_deletes: u32,
    kv_lists: u32,
    /// Requests to the account's object.
    account_requests: u32,
    /// Requests to a job's or batch's object.
    job_requests: u32,
    /// Calls to a queue (`send`, `sendBatch`).
    queue_sends: u32,
    queue_messages: u32,
    /// Queues' billed operations: each 64 KB of a message written, read and deleted.
    queue_ops: u32,
    /// Outbound fetches (the renderer, a webhook endpoint).
    fetches: u32,
    /// An object's own storage (SQLite rows).
    rows_read: u32,
    rows_written: u32,
}

impl Invocation {
    /// Every KV operation, object request, queue call and fetch is a subrequest.
    fn subrequests(&self) -> u32 {
        self.kv_reads
            + self.kv_writes
            + self.kv_deletes
            + self.kv_lists
            + self.account_requests
            + self.job_requests
            + self.queue_sends
            + self.fetches
    }

    fn add(&mut self, other: &Self) {
        self.kv_reads += other.kv_reads;
        self.kv_writes += other.kv_writes;
        self.kv_deletes += other.kv_deletes;
        self.kv_lists += other.kv_lists;
        self.account_requests += other.account_requests;
        self.job_requests += other.job_requests;
        self.queue_sends += other.queue_sends;
        self.queue_messages += other.queue_messages;
        self.queue_ops += other.queue_ops;
        self.fetches += other.fetches;
        self.rows_read += other.rows_read;
        self.rows_written += other.rows_written;
    }

    /// An object's wall-clock time for this request, estimated: a few ms of its own, and a
    /// round trip for each call it waits on (a queue send, another object).
    fn wall_ms_estimate(&self) -> f64 {
        match self.runs {
            Runs::Worker => 0.0,
            Runs::JobObject | Runs::AccountObject => {
                OBJECT_OWN_MS + OBJECT_CALL_MS * f64::from(self.subrequests())
            }
        }
    }
}

/// The invocations of a job's life, in order; the open ones (a Worker's, and an object's it
/// is waiting on) on a stack.
#[derive(Default)]
struct Meter {
    done: RefCell<Vec<Invocation>>,
    open: RefCell<Vec<Invocation>>,
    begun: std::cell::Cell<usize>,
}

impl Meter {
    fn count(&self, f: impl FnOnce(&mut Invocation)) {
        f(self.open.borrow_mut().last_mut().expect("counted inside an invocation"));
    }

    fn open(&self, runs: Runs, what: impl Into<String>) {
        let (seq, depth) = (self.begun.get(), self.open.borrow().len());
        self.begun.set(seq + 1);
        let what = what.into();
        self.open.borrow_mut().push(Invocation { runs, what, seq, depth, ..Invocation::default() });
    }

    fn close(&self) {
        let done = self.open.borrow_mut().pop().expect("an open invocation");
        self.done.borrow_mut().push(done);
    }

    /// Runs `work` as one invocation of the Worker.
    async fn worker<T>(&self, what: &str, work: impl Future<Output = T>) -> T {
        self.open(Runs::Worker, what);
        let out = work.await;
        self.close();
        out
    }

    fn take(&self) -> Vec<Invocation> {
        assert!(self.open.borrow().is_empty(), "an invocation left open");
        let mut done = std::mem::take(&mut *self.done.borrow_mut());
        done.sort_by_key(|i| i.seq);
        done
    }
}

/// Workers KV, or an object's storage.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Kv,
    ObjectStorage,
}

/// A [`Kv`] that counts each operation where it runs.
struct CountingKv<'a, K> {
    inner: K,
    meter: &'a Meter,
    place: Place,
}

impl<K: Kv> Kv for CountingKv<'_, K> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        match self.place {
            Place::Kv => self.meter.count(|i| i.kv_reads += 1),
            Place::ObjectStorage => self.meter.count(|i| i.rows_read += 1),
        }
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, value: &str, ttl_secs: u64) -> Result<(), StoreError> {
        match self.place {
            Place::Kv => self.meter.count(|i| i.kv_writes += 1),
            // job_object_class::StorageKv: a value over PART_BYTES is its parts and a key
            // naming them.
            Place::ObjectStorage => {
                let parts = job_object::parts(value, job_object::PART_BYTES).len();
                let rows = if parts == 1 { 1 } else { parts + 1 };
                self.meter.count(|i| i.rows_written += u32::try_from(rows).unwrap_or(u32::MAX));
            }
        }
        self.inner.put(key, value, ttl_secs).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.place {
            Place::Kv => self.meter.count(|i| i.kv_deletes += 1),
            // StorageKv reads the key first (is it kept in parts?), then deletes it.
            Place::ObjectStorage => self.meter.count(|i| {
                i.rows_read += 1;
                i.rows_written += 1;
            }),
        }
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let keys = self.inner.list(prefix).await?;
        let n = u32::try_from(keys.len()).unwrap_or(u32::MAX);
        match self.place {
            Place::Kv => self.meter.count(|i| i.kv_lists += 1),
            Place::ObjectStorage => self.meter.count(|i| i.rows_read += n.max(1)),
        }
        Ok(keys)
    }
}

/// The size Queues bills a message in: 64 KB (of 1,000 bytes) units, ~100 bytes of its own
/// metadata included.
fn queue_units<M: Serialize>(message: &M) -> u32 {
    let bytes = serde_json::to_vec(message).map_or(0, |j| j.len()) + 100;
    u32::try_from(bytes.div_ceil(64_000)).unwrap_or(u32::MAX)
}

/// A [`Queue`] that counts its calls and messages; each message is counted written, read and
/// deleted once (delivered once, acknowledged).
struct CountingQueue<'a, M> {
    inner: &'a MemoryQueue<M>,
    meter: &'a Meter,
}

impl<M: Clone + Serialize> Queue<M> for CountingQueue<'_, M> {
    async fn send(&self, message: &M) -> Result<(), StoreError> {
        self.send_after(message, 0).await
    }

    async fn send_many(&self, messages: &[M]) -> Result<(), StoreError> {
        let ops: u32 = messages.iter().map(|m| 3 * queue_units(m)).sum();
        let n = u32::try_from(messages.len()).unwrap_or(u32::MAX);
        self.meter.count(|i| {
            i.queue_sends += 1;
            i.queue_messages += n;
            i.queue_ops += ops;
        });
        self.inner.send_many(messages).await
    }

    async fn send_after(&self, message: &M, delay_secs: u32) -> Result<(), StoreError> {
        let ops = 3 * queue_units(message);
        self.meter.count(|i| {
            i.queue_sends += 1;
            i.queue_messages += 1;
            i.queue_ops += ops;
        });
        self.inner.send_after(message, delay_secs).await
    }
}

/// The account's object: each call a request to it (a subrequest of the caller, and an
/// invocation of the object, its rows estimated from `limiter_object.rs`). With
/// `idempotency_in_kv` (before), an `Idempotency-Key` is what 39e5cc9 made of it instead: its
/// claim a KV read, its commit a KV write, its release nothing.
struct CountingLimiter<'a> {
    inner: &'a MemoryLimiter,
    meter: &'a Meter,
    idempotency_in_kv: bool,
    /// Inside an admission: its steps are one request, each counted for its rows only.
    admitting: std::cell::Cell<bool>,
}

impl CountingLimiter<'_> {
    /// A request to the object: counted on the caller, then run as the object's invocation,
    /// whose rows `rows` gives from the call's answer and whether it changed anything.
    fn object_request(&self, what: String, rows: (u32, u32)) {
        if self.admitting.get() {
            self.meter.count(|i| {
                i.rows_read += rows.0;
                i.rows_written += rows.1;
            });
            return;
        }
        self.meter.count(|i| i.account_requests += 1);
        self.meter.open(Runs::AccountObject, what);
        self.meter.count(|i| {
            i.rows_read += rows.0;
            i.rows_written += rows.1;
        });
        self.meter.close();
    }
}

impl Limiter for CountingLimiter<'_> {
    /// After: one request, the object running the steps (`limits::admit_in_turn`). Before
    /// (39e5cc9): a request each to count and to take a slot, the key a KV read.
    async fn admit(&self, account: &str, admit: &Admit) -> Result<Admitted, StoreError> {
        if self.idempotency_in_kv {
            return admit_in_turn(self, account, admit).await;
        }
        self.meter.count(|i| i.account_requests += 1);
        self.meter.open(Runs::AccountObject, "admission: count, claim, take a slot");
        self.admitting.set(true);
        let answer = admit_in_turn(self, account, admit).await;
        self.admitting.set(false);
        self.meter.close();
        answer
    }

    async fn ask(&self, account: &str, request: &LimitRequest) -> Result<LimitAnswer, StoreError> {
        let before = self.inner.counters.borrow().get(account).cloned();
        let answer = self.inner.ask(account, request).await;
        let changed = self.inner.counters.borrow().get(account).cloned() != before;
        // `counters` read; written back when changed.
        let what = match request {
            LimitRequest::Request { .. } => "limits: count a request",
            LimitRequest::StartJob { .. } => "limits: take a slot",
            LimitRequest::EndJob { .. } => "limits: free the slot",
        };
        self.object_request(what.into(), (1, u32::from(changed)));
        answer
    }

    async fn batch(
        &self,
        account: &str,
        request: &BatchRequest,
    ) -> Result<Option<BatchSnapshot>, StoreError> {
        let key = (account.to_owned(), request.batch_id().clone());
        let progress = || self.inner.batches.borrow().get(&key).cloned();
        let counters = || self.inner.counters.borrow().get(account).cloned();
        let before = (progress(), counters());
        let answer = self.inner.batch(account, request).await;
        // `counters` and the batch's progress read; each written back when changed.
        let written = u32::from(progress() != before.0) + u32::from(counters() != before.1);
        let what = match request {
            BatchRequest::Start { .. } => "batch progress: start",
            BatchRequest::Progress { .. } => "batch progress: a document moved",
            BatchRequest::Status { .. } => "batch progress: status",
        };
        self.object_request(what.into(), (2, written));
        answer
    }

    async fn idempotency(
        &self,
        account: &str,
        request: &IdempotencyRequest,
    ) -> Result<IdempotencyAnswer, StoreError> {
        let key = (account.to_owned(), request.key_sha256().to_owned());
        let before = self.inner.keys.borrow().get(&key).cloned();
        let answer = self.inner.idempotency(account, request).await;
        let changed = self.inner.keys.borrow().get(&key).cloned() != before;
        if self.idempotency_in_kv {
            // 39e5cc9: the record read before the job is made, written once it is queued.
            match request {
                IdempotencyRequest::Claim { .. } => self.meter.count(|i| i.kv_reads += 1),
                IdempotencyRequest::Commit { .. } => self.meter.count(|i| i.kv_writes += 1),
                IdempotencyRequest::Release { .. } => {}
            }
            return answer;
        }
        // The key's row read; a row written or deleted is two (the table's and its index's),
        // and a committed key's row is deleted again a day later by a later request: counted
        // here.
        let written = match (changed, request) {
            (false, _) => 0,
            (true, IdempotencyRequest::Commit { .. }) => 4,
            (true, _) => 2,
        };
        let what = match request {
            IdempotencyRequest::Claim { .. } => "Idempotency-Key: claim",
            IdempotencyRequest::Commit { .. } => "Idempotency-Key: commit",
            IdempotencyRequest::Release { .. } => "Idempotency-Key: release",
        };
        self.object_request(what.into(), (1, written));
        answer
    }
}

/// The jobs' objects: each call a request to one (a subrequest of the caller), run as that
/// object's invocation ([`job_object::handle`], as `job_object_class` runs it) on its storage
/// in [`MemoryObjects`], counted; the webhook it queues and the account's object it asks are
/// its own subrequests.
struct CountingObjects<'a> {
    objects: &'a MemoryObjects,
    account: CountingLimiter<'a>,
    meter: &'a Meter,
    cfg: &'a EdgeConfig,
}

impl JobObjects for CountingObjects<'_> {
    async fn call(&self, id: &JobId, request: &ObjectRequest) -> Result<ObjectAnswer, StoreError> {
        self.meter.count(|i| i.job_requests += 1);
        let of = if of_batch(request) { "batch object" } else { "job object" };
        let what = match request {
            ObjectRequest::Get { .. } => format!("{of}: get"),
            ObjectRequest::GetMany { keys } => format!("{of}: get {} keys", keys.len()),
            ObjectRequest::Put { .. } => format!("{of}: put"),
            ObjectRequest::PutMany { entries } => format!("{of}: put {} keys", entries.len()),
            ObjectRequest::Delete { .. } => format!("{of}: delete"),
            ObjectRequest::Event { event, .. } => format!("{of}: {} event", event.status()),
        };
        self.meter.open(Runs::JobObject, what);
        let existed = self.objects.storage.borrow().contains_key(id);
        let own = self.objects.storage.borrow_mut().entry(id.clone()).or_default().clone();
        if !existed {
            // Its first request sets the alarm that forgets it.
            self.meter.count(|i| i.rows_written += 1);
        }
        let storage =
            CountingKv { inner: own.as_ref(), meter: self.meter, place: Place::ObjectStorage };
        let webhooks = CountingQueue { inner: &self.objects.webhooks, meter: self.meter };
        let answer =
            job_object::handle(&storage, (&webhooks, &self.account), self.cfg, id, request.clone())
                .await;
        self.meter.close();
        Ok(answer)
    }
}

/// Whether `request` goes to a batch's object (a batch's keys, or a document's).
fn of_batch(request: &ObjectRequest) -> bool {
    let batch_key = |key: &str| {
        let job =
            key.strip_prefix(crate::store::JOB_PREFIX).and_then(|rest| rest.split(':').next());
        let document = job
            .and_then(|id| JobId::parse(id).ok())
            .and_then(|id| tailpdf_shared::batch::parse_document_job_id(&id).map(drop));
        key.starts_with(crate::store::BATCH_PREFIX) || document.is_some()
    };
    match request {
        ObjectRequest::Get { key }
        | ObjectRequest::Put { key, .. }
        | ObjectRequest::Delete { key } => batch_key(key),
        ObjectRequest::GetMany { keys } => keys.iter().any(|k| batch_key(k)),
        ObjectRequest::PutMany { entries } => entries.iter().any(|e| batch_key(&e.key)),
        ObjectRequest::Event { job_id, .. } => job_id.is_some(),
    }
}

/// Outbound fetches, answered as scripted (200 with the next body).
struct ScriptedHttp<'a> {
    meter: &'a Meter,
    bodies: RefCell<VecDeque<Vec<u8>>>,
}

impl<'a> ScriptedHttp<'a> {
    fn new(meter: &'a Meter, bodies: Vec<Vec<u8>>) -> Self {
        Self { meter, bodies: RefCell::new(bodies.into()) }
    }
}

impl Http for ScriptedHttp<'_> {
    async fn post(&self, _: Post) -> Result<Answer, String> {
        self.meter.count(|i| i.fetches += 1);
        Ok(Answer { status: 200, retry_after: None })
    }

    async fn post_reading(&self, post: Post) -> Result<(Answer, Vec<u8>), String> {
        let answer = self.post(post).await?;
        Ok((answer, self.bodies.borrow_mut().pop_front().unwrap_or_default()))
    }
}

// ------------------------------------------------------------------- a job's life ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Design {
    /// 39e5cc9: every key in KV.
    Before,
    /// This tree: a job's keys in its object (a document's in its batch's),
    /// `Idempotency-Key`s in the account's.
    After,
}

const API_KEY: &str = "cost-api-key";
const ACCOUNT: &str = "costs";
const UPLOAD_URL: &str = "https://bucket.s3.amazonaws.com/pdfs/a.pdf?X-Amz-Signature=abc";
const WEBHOOK_URL: &str = "https://api.example.com/webhooks/pdf-ready";

/// The Worker's settings as deployed: wrangler.toml's `[vars]` (the account's default limits
/// among them), and a secret.
fn deployed_config() -> EdgeConfig {
    let toml = include_str!("../../wrangler.toml");
    let mut vars = std::collections::HashMap::new();
    let mut in_vars = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            in_vars = line == "[vars]";
        } else if let (true, Some((name, value))) = (in_vars, line.split_once('=')) {
            vars.insert(name.trim().to_owned(), value.trim().trim_matches('"').to_owned());
        }
    }
    vars.insert("INTERNAL_SECRET".into(), "s".into());
    EdgeConfig::from_vars(|name| vars.get(name).cloned()).expect("wrangler.toml's vars")
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix(1_796_600_000 + secs).expect("a time")
}

/// The futures here wait on nothing but memory: polled to completion.
fn run<F: Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Everything a job's life touches, in memory.
struct World {
    design: Design,
    cfg: EdgeConfig,
    meter: Meter,
    api_keys: MemoryKv,
    jobs: MemoryKv,
    objects: MemoryObjects,
    account: MemoryLimiter,
    render_jobs: MemoryQueue<RenderJobMessage>,
    render_batches: MemoryQueue<RenderJobMessage>,
    /// The Worker's webhooks queue (the objects' is `objects.webhooks`).
    webhooks: MemoryQueue<WebhookMessage>,
    dead_letters: MemoryQueue<WebhookMessage>,
}

impl World {
    fn new(design: Design) -> Self {
        let world = Self {
            design,
            cfg: deployed_config(),
            meter: Meter::default(),
            api_keys: MemoryKv::default(),
            jobs: MemoryKv::default(),
            objects: MemoryObjects::default(),
            account: MemoryLimiter::default(),
            render_jobs: MemoryQueue::default(),
            render_batches: MemoryQueue::default(),
            webhooks: MemoryQueue::default(),
            dead_letters: MemoryQueue::default(),
        };
        let account = Account {
            account: ACCOUNT.into(),
            webhook_secret: Some("whsec".into()),
            limits: crate::store::Limits::default(),
        };
        // The account's object keeps the job's clock.
        world.account.now_ms.set(u64::try_from(at(2).unix()).expect("after 1970") * 1000);
        let hash = tailpdf_shared::signing::hash_api_key(API_KEY);
        run(async {
            put_json(&world.api_keys, &api_key_key(&hash), &account, 60).await.expect("seeded");
            put_json(&world.api_keys, &crate::store::account_key(ACCOUNT), &account, 60)
                .await
                .expect("seeded");
        });
        world
    }

    fn kv<'a>(&'a self, inner: &'a MemoryKv) -> CountingKv<'a, &'a MemoryKv> {
        CountingKv { inner, meter: &self.meter, place: Place::Kv }
    }

    fn limiter(&self) -> CountingLimiter<'_> {
        CountingLimiter {
            inner: &self.account,
            meter: &self.meter,
            idempotency_in_kv: self.design == Design::Before,
            admitting: std::cell::Cell::new(false),
        }
    }

    fn queue<'a, M>(&'a self, inner: &'a MemoryQueue<M>) -> CountingQueue<'a, M> {
        CountingQueue { inner, meter: &self.meter }
    }

    /// Job state as the Worker reaches it now (`worker_glue::jobs`).
    fn routed(&self) -> Routed<CountingKv<'_, &MemoryKv>, CountingObjects<'_>> {
        let objects = CountingObjects {
            objects: &self.objects,
            account: self.limiter(),
            meter: &self.meter,
            cfg: &self.cfg,
        };
        Routed { kv: self.kv(&self.jobs), objects }
    }

    /// The webhooks queued so far, by the Worker or by the objects.
    fn queued_webhooks(&self) -> Vec<WebhookMessage> {
        let mut all = self.webhooks.0.borrow().clone();
        all.extend(self.objects.webhooks.0.borrow().iter().cloned());
        all
    }

    async fn authenticate(&self) -> Account {
        admission::authenticate(&self.kv(&self.api_keys), Some(API_KEY)).await.expect("the key")
    }

    /// `POST /pdf` (async), as `worker_glue::post_pdf`.
    async fn post_pdf(&self, body: &str, idempotency_key: Option<&str>) -> JobId {
        self.meter
            .worker("POST /pdf", async {
                let account = self.authenticate().await;
                let headers = SubmitHeaders { idempotency_key, ..SubmitHeaders::default() };
                let (queue, limiter) = (self.queue(&self.render_jobs), self.limiter());
                let (cfg, body, now) = (&self.cfg, body.as_bytes(), at(0));
                let submitted = match self.design {
                    Design::Before => {
                        let stores = (&self.kv(&self.jobs), &queue, &limiter);
                        jobs::submit(stores, cfg, &account, headers, body, now).await
                    }
                    Design::After => {
                        let stores = (&self.routed(), &queue, &limiter);
                        jobs::submit(stores, cfg, &account, headers, body, now).await
                    }
                };
                match submitted.expect("accepted").submission {
                    Submission::Accepted(accepted) => accepted.job_id,
                    other => panic!("not a new job: {other:?}"),
                }
            })
            .await
    }

    /// `GET /internal/jobs/{id}/spec`, as `worker_glue::get_spec`.
    async fn get_spec(&self, id: &JobId) {
        self.meter
            .worker("GET /internal/jobs/{id}/spec", async {
                let spec = match self.design {
                    Design::Before => jobs::job_spec(&self.kv(&self.jobs), id.as_str()).await,
                    Design::After => jobs::job_spec(&self.routed(), id.as_str()).await,
                };
                spec.expect("the spec");
            })
            .await;
    }

    /// `POST /internal/jobs/{id}/events`, as `worker_glue::post_event` (before: 39e5cc9's,
    /// `events::apply_event` on KV).
    async fn post_event(&self, id: &JobId, event: &JobEvent) {
        let what = format!("POST /internal/jobs/{{id}}/events ({})", event.status());
        self.meter
            .worker(&what, async {
                let body = serde_json::to_vec(event).expect("JSON");
                let (webhooks, limiter) = (self.queue(&self.webhooks), self.limiter());
                let (cfg, id) = (&self.cfg, id.as_str());
                let ack = match self.design {
                    Design::Before => {
                        let jobs = self.kv(&self.jobs);
                        events::apply_event(&jobs, &webhooks, &limiter, cfg, id, &body).await
                    }
                    Design::After => {
                        job_object::apply_event(&self.routed().objects, cfg, id, &body).await
                    }
                };
                assert!(ack.expect("accepted").applied, "{event:?}");
            })
            .await;
    }

    /// `GET /jobs/{id}`, as `worker_glue::get_job`.
    async fn get_job(&self, id: &JobId) -> JobStatus {
        self.meter
            .worker("GET /jobs/{id}", async {
                let account = self.authenticate().await;
                let (cfg, id) = (&self.cfg, id.as_str());
                let view = match self.design {
                    Design::Before => {
                        jobs::job_status(&self.kv(&self.jobs), cfg, &account, id, at(5)).await
                    }
                    Design::After => {
                        jobs::job_status(&self.routed(), cfg, &account, id, at(5)).await
                    }
                };
                view.expect("the job").status
            })
            .await
    }

    /// One delivery of the render-jobs consumer (push mode), as `worker_glue::push_render_job`,
    /// the renderer answering `answer`: the message sent last.
    async fn push_render_job(&self, answer: &TakeAnswer) -> Verdict {
        let what = format!("render-jobs consumer (take: {answer:?})");
        let message = self.render_jobs.0.borrow().last().cloned().expect("a message");
        self.meter
            .worker(&what, async {
                let http =
                    ScriptedHttp::new(&self.meter, vec![serde_json::to_vec(answer).expect("JSON")]);
                let (render_jobs, webhooks) =
                    (self.queue(&self.render_jobs), self.queue(&self.webhooks));
                let limiter = self.limiter();
                let (cfg, now) = (&self.cfg, at(2));
                match self.design {
                    Design::Before => {
                        let ends = (&self.kv(&self.jobs), &webhooks, &limiter);
                        consumers::push_render_job(&http, &render_jobs, &ends, cfg, &message, now)
                            .await
                    }
                    Design::After => {
                        let jobs = self.routed();
                        let ends = ObjectEnds(&jobs.objects);
                        consumers::push_render_job(&http, &render_jobs, &ends, cfg, &message, now)
                            .await
                    }
                }
            })
            .await
    }

    /// One delivery of the webhooks consumer per webhook queued, as
    /// `worker_glue::deliver_webhook` (the account's secret read, then the delivery).
    async fn deliver_webhooks(&self) -> usize {
        let hooks = self.queued_webhooks();
        for hook in &hooks {
            self.meter
                .worker("webhooks consumer", async {
                    let keys = self.kv(&self.api_keys);
                    let account = admission::account(&keys, &hook.account).await.expect("read");
                    let secret = account.and_then(|a| a.webhook_secret);
                    let http = ScriptedHttp::new(&self.meter, Vec::new());
                    let queues = (&self.queue(&self.webhooks), &self.queue(&self.dead_letters));
                    let (cfg, secret, now) = (&self.cfg, secret.as_deref(), at(4));
                    let verdict = match self.design {
                        Design::Before => {
                            let jobs = self.kv(&self.jobs);
                            consumers::deliver_webhook(&http, &jobs, queues, cfg, hook, secret, now)
                                .await
                        }
                        Design::After => {
                            let jobs = self.routed();
                            consumers::deliver_webhook(&http, &jobs, queues, cfg, hook, secret, now)
                                .await
                        }
                    };
                    assert_eq!(verdict, Verdict::Ack);
                })
                .await;
        }
        hooks.len()
    }

    /// The invocations of the job's life, once each object has forgotten it.
    fn finish(self) -> Vec<Invocation> {
        self.alarms();
        let in_kv: Vec<String> = self.jobs.entries.borrow().keys().cloned().collect();
        match self.design {
            Design::Before => assert!(self.objects.storage.borrow().is_empty(), "no object"),
            Design::After => assert!(in_kv.is_empty(), "job state in KV: {in_kv:?}"),
        }
        self.meter.take()
    }

    /// A day later each object forgets its job or batch (its alarm: a request, `deleteAll()`).
    fn alarms(&self) {
        for own in self.objects.storage.borrow().values() {
            let keys = u32::try_from(own.entries.borrow().len()).unwrap_or(u32::MAX);
            self.meter.open(Runs::JobObject, "its object: alarm, a day later (deleteAll)");
            self.meter.count(|i| i.rows_written += keys);
            self.meter.close();
        }
    }

    /// `POST /pdf/batch`, as `worker_glue::post_pdf_batch`.
    async fn post_batch(&self, body: &str, idempotency_key: Option<&str>) -> BatchAccepted {
        self.meter
            .worker("POST /pdf/batch", async {
                let account = self.authenticate().await;
                let headers = SubmitHeaders { idempotency_key, ..SubmitHeaders::default() };
                let (queue, limiter) = (self.queue(&self.render_batches), self.limiter());
                let (cfg, body, now) = (&self.cfg, body.as_bytes(), at(0));
                let submitted = match self.design {
                    Design::Before => {
                        let stores = (&self.kv(&self.jobs), &queue, &limiter);
                        batches::submit_batch(stores, cfg, &account, headers, body, now).await
                    }
                    Design::After => {
                        let stores = (&self.routed(), &queue, &limiter);
                        batches::submit_batch(stores, cfg, &account, headers, body, now).await
                    }
                };
                match submitted.expect("accepted").submission {
                    BatchSubmission::Accepted(accepted) => accepted,
                    BatchSubmission::Replayed(_) => panic!("replayed"),
                }
            })
            .await
    }

    /// One delivery of render-batches (the whole batch), as `worker_glue::push_render_group`,
    /// the renderer answering once every document ended.
    async fn push_render_group(&self) -> Vec<Verdict> {
        let messages = self.render_batches.0.borrow().clone();
        self.meter
            .worker("render-batches consumer (the batch's group)", async {
                let ended = GroupAnswer {
                    jobs: messages
                        .iter()
                        .map(|m| GroupJobEnd::Ended { job_id: m.job_id.clone() })
                        .collect(),
                };
                let http =
                    ScriptedHttp::new(&self.meter, vec![serde_json::to_vec(&ended).expect("JSON")]);
                let (queue, webhooks) =
                    (self.queue(&self.render_batches), self.queue(&self.webhooks));
                let (cfg, now) = (&self.cfg, at(2));
                match self.design {
                    Design::Before => {
                        let (jobs, limiter) = (self.kv(&self.jobs), self.limiter());
                        let ends = (&jobs, &webhooks, &limiter);
                        consumers::push_render_group(&http, &queue, &ends, cfg, &messages, now)
                            .await
                    }
                    Design::After => {
                        let ends = ObjectEnds(&self.routed().objects);
                        consumers::push_render_group(&http, &queue, &ends, cfg, &messages, now)
                            .await
                    }
                }
            })
            .await
    }

    /// `GET /batches/{id}`, as `worker_glue::get_batch`.
    async fn get_batch(&self, id: &JobId) {
        self.meter
            .worker("GET /batches/{id}", async {
                let account = self.authenticate().await;
                let limiter = self.limiter();
                let (cfg, id, now) = (&self.cfg, id.as_str(), at(5));
                let view = match self.design {
                    Design::Before => {
                        let jobs = self.kv(&self.jobs);
                        batches::batch_status(&jobs, &limiter, cfg, &account, id, now).await
                    }
                    Design::After => {
                        let jobs = self.routed();
                        batches::batch_status(&jobs, &limiter, cfg, &account, id, now).await
                    }
                };
                view.expect("the batch");
            })
            .await;
    }
}

fn completed() -> JobEvent {
    let result =
        RenderResult { file_size_bytes: 69_000, render_duration_ms: 400, upload_duration_ms: 80 };
    JobEvent::Completed { at: at(3), result }
}

/// The events of a job the renderer ends: `processing`, `uploading`, `completed`.
fn job_events() -> [JobEvent; 3] {
    [JobEvent::Processing { at: at(2) }, JobEvent::Uploading { at: at(3) }, completed()]
}

/// An async job with a webhook, whose `content` is `content`.
fn job_body(content: &str) -> String {
    serde_json::json!({
        "content": content,
        "async": true,
        "upload_url": UPLOAD_URL,
        "webhook_url": WEBHOOK_URL,
        "pdfOptions": {"format": "A4", "printBackground": true},
    })
    .to_string()
}

const INVOICE: &str = r#"<div class="p-8 font-sans"><h1 class="text-2xl font-semibold">Invoice #1234</h1><table class="w-full mt-6"><tr><td>Design work</td><td class="text-right">$1,200.00</td></tr></table></div>"#;

/// One single job's life: `POST /pdf`, the spec fetched if it did not travel, push mode's two
/// deliveries, three events, [`POLLS`] polls, its webhook; then its object's alarm.
fn single_job(design: Design, content: &str, idempotency_key: Option<&str>) -> Vec<Invocation> {
    let world = World::new(design);
    run(async {
        let id = world.post_pdf(&job_body(content), idempotency_key).await;
        let message = world.render_jobs.0.borrow()[0].clone();
        assert_eq!(message.spec.is_none(), content.len() > INLINE_SPEC_MAX_BYTES);
        assert_eq!(world.push_render_job(&TakeAnswer::Taken).await, Verdict::Ack);
        if message.spec.is_none() {
            world.get_spec(&id).await;
        }
        let [processing, uploading, completed] = job_events();
        world.post_event(&id, &processing).await;
        world.post_event(&id, &uploading).await;
        // The client's first poll while the job runs, the others after its webhook.
        if POLLS > 0 {
            assert_eq!(world.get_job(&id).await, JobStatus::Uploading);
        }
        world.post_event(&id, &completed).await;
        assert_eq!(world.push_render_job(&TakeAnswer::Ended).await, Verdict::Ack);
        assert_eq!(world.deliver_webhooks().await, 1, "one webhook");
        for _ in 1..POLLS {
            assert_eq!(world.get_job(&id).await, JobStatus::Completed);
        }
    });
    world.finish()
}

/// One batch of [`BATCH_DOCUMENTS`] small documents with the batch's webhook: its submission,
/// one render-batches delivery, three events per document, [`BATCH_POLLS`] polls,
/// `batch.completed`.
fn batch(design: Design, idempotency_key: Option<&str>) -> Vec<Invocation> {
    let world = World::new(design);
    let documents: Vec<_> = (0..BATCH_DOCUMENTS)
        .map(|i| {
            let upload_url = UPLOAD_URL.replace("a.pdf", &format!("{i}.pdf"));
            serde_json::json!({"content": INVOICE.replace("1234", &i.to_string()), "upload_url": upload_url})
        })
        .collect();
    let body = serde_json::json!({
        "webhook_url": WEBHOOK_URL,
        "pdfOptions": {"format": "A4", "printBackground": true},
        "documents": documents,
    })
    .to_string();
    run(async {
        let accepted = world.post_batch(&body, idempotency_key).await;
        assert!(world.push_render_group().await.iter().all(|v| *v == Verdict::Ack));
        for job in &accepted.jobs {
            for event in job_events() {
                world.post_event(&job.job_id, &event).await;
            }
        }
        for _ in 0..BATCH_POLLS {
            world.get_batch(&accepted.batch_id).await;
        }
        assert_eq!(world.deliver_webhooks().await, 1, "one batch.completed");
    });
    world.finish()
}

// ------------------------------------------------------------------- the bill ----

/// One line of the bill: what is counted, its Workers Paid list price in dollars a unit, and
/// how many units a month the plan includes (developers.cloudflare.com: workers/platform/pricing,
/// kv/platform/pricing, durable-objects/platform/pricing, queues/platform/pricing).
struct Line {
    what: &'static str,
    price: f64,
    included: f64,
}

const LINES: [Line; 11] = [
    Line { what: "Workers requests", price: 0.30e-6, included: 10e6 },
    Line { what: "Workers CPU (2 ms an invocation, assumed)", price: 0.02e-6, included: 30e6 },
    Line { what: "KV reads", price: 0.50e-6, included: 10e6 },
    Line { what: "KV writes", price: 5.00e-6, included: 1e6 },
    Line { what: "KV deletes", price: 5.00e-6, included: 1e6 },
    Line { what: "KV lists", price: 5.00e-6, included: 1e6 },
    Line { what: "Durable Object requests", price: 0.15e-6, included: 1e6 },
    Line { what: "Durable Object duration (estimated)", price: 12.50e-6, included: 400e3 },
    Line { what: "object rows read", price: 0.001e-6, included: 25e9 },
    Line { what: "object rows written", price: 1.00e-6, included: 50e6 },
    Line { what: "Queues operations", price: 0.40e-6, included: 1e6 },
];

/// Workers Paid, a month.
const PLAN_DOLLARS: f64 = 5.0;

/// CPU time of one Worker invocation, assumed (not measured here): the edge parses and writes
/// small JSON and signs a call or two.
const WORKER_CPU_MS: f64 = 2.0;
/// An object's own time per request, and per call it waits on, assumed.
const OBJECT_OWN_MS: f64 = 5.0;
const OBJECT_CALL_MS: f64 = 20.0;
/// An object's memory as billed.
const OBJECT_GB: f64 = 0.128;

/// A flow's totals, per job (a batch's divided by its documents).
#[derive(Debug, Clone, Default)]
struct Totals {
    worker_invocations: f64,
    object_requests: f64,
    object_gb_s: f64,
    ops: Invocation,
    /// The most subrequests of one invocation, and which.
    busiest: (u32, String),
    per: f64,
}

impl Totals {
    fn of(invocations: &[Invocation], per: usize) -> Self {
        let mut t = Self { per: per as f64, ..Self::default() };
        for i in invocations {
            match i.runs {
                Runs::Worker => t.worker_invocations += 1.0,
                Runs::JobObject | Runs::AccountObject => {
                    t.object_requests += 1.0;
                    t.object_gb_s += OBJECT_GB * i.wall_ms_estimate() / 1000.0;
                }
            }
            t.ops.add(i);
            if i.subrequests() > t.busiest.0 {
                t.busiest = (i.subrequests(), i.what.clone());
            }
        }
        t.worker_invocations /= t.per;
        t.object_requests /= t.per;
        t.object_gb_s /= t.per;
        t
    }

    fn per_job(&self, n: u32) -> f64 {
        f64::from(n) / self.per
    }

    /// A job's units of each of [`LINES`].
    fn units(&self) -> [f64; 11] {
        let o = &self.ops;
        [
            self.worker_invocations,
            self.worker_invocations * WORKER_CPU_MS,
            self.per_job(o.kv_reads),
            self.per_job(o.kv_writes),
            self.per_job(o.kv_deletes),
            self.per_job(o.kv_lists),
            self.object_requests,
            self.object_gb_s,
            self.per_job(o.rows_read),
            self.per_job(o.rows_written),
            self.per_job(o.queue_ops),
        ]
    }

    /// Each line of the bill for a million jobs at list prices, in dollars.
    fn bill(&self) -> [f64; 11] {
        let units = self.units();
        std::array::from_fn(|i| 1e6 * units[i] * LINES[i].price)
    }

    fn dollars(&self) -> f64 {
        self.bill().iter().sum()
    }

    /// A month of `jobs` jobs: the plan, and what is beyond its allowances.
    fn month(&self, jobs: f64) -> f64 {
        let over = self.units().into_iter().zip(&LINES);
        PLAN_DOLLARS
            + over
                .map(|(units, line)| (units * jobs - line.included).max(0.0) * line.price)
                .sum::<f64>()
    }
}

fn fmt_n(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}

/// One line of [`invocations_table`].
fn invocation_line(i: &Invocation, times: usize) -> String {
    let indent = "↳ ".repeat(i.depth);
    let times = if times > 1 { format!(" ×{times}") } else { String::new() };
    format!(
        "| {indent}{}{times} | {}/{}/{}/{} | {} | {} | {} ({}) | {} | {}/{} | {} |",
        i.what,
        i.kv_reads,
        i.kv_writes,
        i.kv_deletes,
        i.kv_lists,
        i.account_requests,
        i.job_requests,
        i.queue_sends,
        i.queue_messages,
        i.fetches,
        i.rows_read,
        i.rows_written,
        i.subrequests()
    )
}

/// Each invocation of a flow, the objects' requests under the Worker's invocation that made
/// them; identical invocations (with theirs) once, with their number.
fn invocations_table(title: &str, invocations: &[Invocation]) -> String {
    // Each Worker invocation (or alarm) with the objects' requests it made.
    let mut made: Vec<Vec<&Invocation>> = Vec::new();
    for i in invocations {
        match made.last_mut() {
            Some(unit) if i.depth > 0 => unit.push(i),
            _ => made.push(vec![i]),
        }
    }
    let lines = |u: &[&Invocation]| u.iter().map(|i| invocation_line(i, 1)).collect::<Vec<_>>();
    let mut units: Vec<(Vec<&Invocation>, usize)> = Vec::new();
    for unit in made {
        match units.iter_mut().find(|(seen, _)| lines(seen) == lines(&unit)) {
            Some((_, n)) => *n += 1,
            None => units.push((unit, 1)),
        }
    }
    let mut out = format!("\n#### {title}\n\n");
    out.push_str(
        "| invocation | KV r/w/d/l | account object | job or batch object | queue sends (messages) | fetches | object rows r/w | subrequests |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (unit, times) in units {
        for (k, i) in unit.iter().enumerate() {
            let _ = writeln!(out, "{}", invocation_line(i, if k == 0 { times } else { 1 }));
        }
    }
    out
}

/// The kinds of job counted, each before and after.
struct Kind {
    name: &'static str,
    before: Totals,
    after: Totals,
}

fn summary_table(kinds: &[Kind]) -> String {
    let mut out = String::from(
        "| per job | design | Worker invocations | KV reads | KV writes | KV deletes | KV lists | DO requests (account + job or batch objects) | object rows read / written | queue messages (operations) | fetches | busiest invocation: subrequests of 50 / 10,000 |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for kind in kinds {
        for (design, t) in [("before", &kind.before), ("after", &kind.after)] {
            let o = &t.ops;
            let accounts = t.per_job(o.account_requests);
            let objects = t.object_requests - accounts;
            let _ = writeln!(
                out,
                "| {} | {design} | {} | {} | {} | {} | {} | {} ({} + {}) | {} / {} | {} ({}) | {} | {} ({}) |",
                kind.name,
                fmt_n(t.worker_invocations),
                fmt_n(t.per_job(o.kv_reads)),
                fmt_n(t.per_job(o.kv_writes)),
                fmt_n(t.per_job(o.kv_deletes)),
                fmt_n(t.per_job(o.kv_lists)),
                fmt_n(t.object_requests),
                fmt_n(accounts),
                fmt_n(objects),
                fmt_n(t.per_job(o.rows_read)),
                fmt_n(t.per_job(o.rows_written)),
                fmt_n(t.per_job(o.queue_messages)),
                fmt_n(t.per_job(o.queue_ops)),
                fmt_n(t.per_job(o.fetches)),
                t.busiest.0,
                t.busiest.1,
            );
        }
    }
    out
}

fn bill_table(kinds: &[Kind]) -> String {
    let mut out = String::from("| a million jobs, $ |");
    let mut rule = String::from("|---|");
    for kind in kinds {
        let _ = write!(out, " {} before | after |", kind.name);
        rule.push_str("---|---|");
    }
    let _ = write!(out, "\n{rule}\n");
    for (i, line) in LINES.iter().enumerate() {
        let _ = write!(out, "| {} |", line.what);
        for kind in kinds {
            let _ = write!(out, " {:.2} | {:.2} |", kind.before.bill()[i], kind.after.bill()[i]);
        }
        out.push('\n');
    }
    out.push_str("| **total, at list prices** |");
    for kind in kinds {
        let _ =
            write!(out, " **{:.2}** | **{:.2}** |", kind.before.dollars(), kind.after.dollars());
    }
    out.push_str("\n| after / before |");
    for kind in kinds {
        let _ = write!(out, " | **{:.2}** |", kind.after.dollars() / kind.before.dollars());
    }
    out.push_str("\n| a million in one month: the $5 plan, less its allowances |");
    for kind in kinds {
        let _ = write!(out, " {:.2} | {:.2} |", kind.before.month(1e6), kind.after.month(1e6));
    }
    out.push('\n');
    out
}

/// A flow: a job's life in one design, and how many jobs it is.
type Flow = Box<dyn Fn(Design) -> (Vec<Invocation>, usize)>;

#[test]
fn what_a_job_costs_before_and_after_its_own_object() {
    let large = format!("<p>{}</p>", "word ".repeat(INLINE_SPEC_MAX_BYTES / 4));
    let flows: [(&'static str, Flow); 4] = [
        ("single job, small spec", Box::new(|d| (single_job(d, INVOICE, Some("order-1")), 1))),
        (
            "single job, spec over the message",
            Box::new(move |d| (single_job(d, &large, Some("order-1")), 1)),
        ),
        ("single job, no Idempotency-Key", Box::new(|d| (single_job(d, INVOICE, None), 1))),
        ("batch document (10 a batch)", Box::new(|d| (batch(d, Some("batch-1")), BATCH_DOCUMENTS))),
    ];
    let mut kinds = Vec::new();
    let mut detail = String::new();
    for (name, flow) in &flows {
        let (before, per) = flow(Design::Before);
        let (after, _) = flow(Design::After);
        detail.push_str(&invocations_table(&format!("{name}, before (39e5cc9)"), &before));
        detail.push_str(&invocations_table(&format!("{name}, after (this tree)"), &after));
        for invocation in before.iter().chain(&after) {
            assert!(
                invocation.subrequests() <= FREE_SUBREQUESTS,
                "{name}: {} makes {} subrequests, over the Free plan's",
                invocation.what,
                invocation.subrequests()
            );
        }
        let (before, after) = (Totals::of(&before, per), Totals::of(&after, per));
        kinds.push(Kind { name, before, after });
    }
    println!(
        "\n### What each invocation does\n{detail}\n### Per job\n\n{}\nSubrequest limits: \
         {FREE_SUBREQUESTS} (Free) / {PAID_SUBREQUESTS} (Paid).\n\n### A million jobs at \
         Workers Paid list prices\n\n{}",
        summary_table(&kinds),
        bill_table(&kinds)
    );
    for kind in &kinds {
        let (b, a) = (&kind.before, &kind.after);
        // The goal: no more dollars a job than before. Job state left KV (whose writes cost
        // ten times a read) altogether.
        let (dollars_after, dollars_before) = (a.dollars(), b.dollars());
        assert!(
            dollars_after <= dollars_before,
            "{}: ${dollars_after:.2} after, ${dollars_before:.2} before",
            kind.name
        );
        assert_eq!(a.ops.kv_writes + a.ops.kv_deletes + a.ops.kv_lists, 0, "{}", kind.name);
    }
}
