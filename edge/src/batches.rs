//! `POST /pdf/batch` and `GET /batches/{id}` (a tailpdf extension): many documents sharing
//! fonts, config and pdfOptions, each an async job of its own, and the batch's progress.
//!
//! A batch is accepted whole: one request against the account's requests per minute, one
//! `Idempotency-Key` (the key space of `POST /pdf`), then one job per document. A document's
//! job id is the batch's id and its index ([`document_job_id`]), so the batch's one record
//! (`batch:{id}`, [`BatchRecord`]) holds what each job's `job:{id}` would, and
//! [`crate::store::load_job`] reads it there until the job ends (then `job:{id}` is written, as
//! for any job): `GET /jobs/{id}`, events, webhooks and dead letters treat them as any job.
//! Their messages go to `render-batches`, whose push consumer hands a batch's documents to a
//! renderer together (`consumers::push_render_group`).
//!
//! A document whose spec is too large for its message keeps it at `job:{id}:spec` when its
//! `content` alone is large ([`OWN_SPEC_MIN_CONTENT_BYTES`]); the others keep what they add to
//! the shared parts in the pack of their range of [`SPECS_PER_PACK`] documents
//! (`batch:{id}:specs:{n}`, [`SpecPack`]), deleted when the last of that range ends. So a
//! submission writes a bounded number of keys whatever the documents: the record, at most one
//! pack per [`SPECS_PER_PACK`] documents and one spec per [`OWN_SPEC_MIN_CONTENT_BYTES`] of the
//! body, under 400 ([`SUBMIT_KV_OPERATIONS_MAX`]). They all belong to the batch's Durable Object
//! (with its documents' keys: [`crate::job_object`]), which takes them in a request per 8 MiB
//! ([`Kv::put_many`]): a few subrequests, within the Free plan's 50.
//!
//! Documents do not take slots among the account's jobs in flight: the batch's size is bounded
//! by `MAX_BATCH_DOCUMENTS` and its own requests-per-minute count, and a batch that could only
//! partly start would be neither accepted nor refused.
//!
//! Progress lives in the account's Durable Object ([`crate::limits::BatchRequest`]): each job's
//! move is reported there, forward only; the report that makes every document terminal is
//! answered `completed_now`, and that event queues the one `batch.completed` webhook (with a
//! marker, as a job's webhook, so that a repeat of an event whose queueing failed queues it).

use std::collections::BTreeMap;

use serde::Serialize;
use tailpdf_shared::{
    batch::{
        document_job_id, parse_batch_request, BatchAccepted, BatchJobState, BatchView, ValidBatch,
    },
    limits::{INLINE_SPEC_MAX_BYTES, JOB_TTL_OPEN_SECS, MAX_BATCH_BODY_BYTES, MAX_BATCH_DOCUMENTS},
    messages::{BatchRef, RenderJobMessage, SecretUrl, WebhookMessage},
    request::validate_idempotency_key,
    webhook::BatchWebhookPayload,
    JobId, JobStatus, Timestamp,
};

use crate::{
    admission::{
        admit, count_request, idempotency_conflict, settle, Idempotency, Made, SubmitHeaders,
    },
    config::EdgeConfig,
    error::EdgeError,
    idempotency::IdempotencyRecord,
    limits::{BatchRequest, BatchSnapshot, Limiter},
    store::{
        batch_key, batch_webhook_queued_key, get_json, pack_range, put_json, spec_key, specs_key,
        Account, BatchDocument, BatchRecord, Entry, Kv, Queue, SpecPack, StoreError, StoredJob,
        PUT_MANY_BYTES, SEND_MANY_MAX_BYTES, SEND_MANY_MAX_MESSAGES, SPECS_PER_PACK,
    },
};

/// A document whose spec does not travel in its message keeps it at `job:{id}:spec` when its
/// `content` is larger than this as JSON (at most `MAX_BATCH_BODY_BYTES` / this of them, 256);
/// a smaller one goes in its range's pack.
pub const OWN_SPEC_MIN_CONTENT_BYTES: usize = 256 * 1024;

/// The most KV operations one `POST /pdf/batch` makes (measured by the tests on the worst
/// batches): Cloudflare allows 1,000 per invocation.
pub const SUBMIT_KV_OPERATIONS_MAX: usize = 1
    + 2
    + 1
    + MAX_BATCH_BODY_BYTES / OWN_SPEC_MIN_CONTENT_BYTES
    + MAX_BATCH_DOCUMENTS.div_ceil(SPECS_PER_PACK as usize);
const _: () = assert!(SUBMIT_KV_OPERATIONS_MAX < 400);

/// Where a document's spec goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpecAt {
    Message,
    /// `job:{id}:spec`.
    Own,
    /// Its range's pack.
    Pack,
}

/// Where document `index`'s spec goes; `shared_len`: the length of `batch.shared` as JSON.
/// Without metadata of its own, a document's spec is the shared one with its `content`: its
/// length is found without assembling it.
fn spec_at(batch: &ValidBatch, index: usize, shared_len: usize) -> SpecAt {
    if spec_len(batch, index, shared_len) <= INLINE_SPEC_MAX_BYTES {
        SpecAt::Message
    } else if json_len(&batch.documents[index].content) > OWN_SPEC_MIN_CONTENT_BYTES {
        SpecAt::Own
    } else {
        SpecAt::Pack
    }
}

/// The length of document `index`'s spec as JSON.
fn spec_len(batch: &ValidBatch, index: usize, shared_len: usize) -> usize {
    let document = &batch.documents[index];
    if document.metadata.is_some() {
        return json_len(&batch.spec(index));
    }
    // The shared spec's `"content":""`, filled.
    shared_len.saturating_sub(json_len(&"")).saturating_add(json_len(&document.content))
}

/// The length of `value` as JSON, without writing it anywhere.
fn json_len(value: &impl Serialize) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).map_or(usize::MAX, |()| count.0)
}

/// What a `POST /pdf/batch` came to (202 either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchSubmission {
    Accepted(BatchAccepted),
    /// The same `Idempotency-Key` and body as before: the batch made then.
    Replayed(BatchAccepted),
}

/// A batch submission and the `pdfOptions` fields it ignored (`X-TailPDF-Ignored`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmittedBatch {
    pub submission: BatchSubmission,
    pub ignored: Vec<String>,
}

/// `POST /pdf/batch`. A failure part way (503) may leave some documents queued: they render
/// and upload as any job, and a retry with the same key makes a new batch whose uploads
/// overwrite theirs with the same PDFs.
pub async fn submit_batch(
    (jobs, render_batches, limiter): (&impl Kv, &impl Queue<RenderJobMessage>, &impl Limiter),
    cfg: &EdgeConfig,
    account: &Account,
    headers: SubmitHeaders<'_>,
    body: &[u8],
    now: Timestamp,
) -> Result<SubmittedBatch, EdgeError> {
    let parsed = parse_batch_request(body, cfg.url_policy).and_then(|batch| {
        headers.idempotency_key.map(validate_idempotency_key).transpose()?;
        Ok(batch)
    });
    // A batch is one request, counted with its admission; a refused body on its own.
    let mut batch = match parsed {
        Ok(batch) => batch,
        Err(e) => {
            count_request(limiter, cfg, account).await?;
            return Err(e.into());
        }
    };
    let ignored = std::mem::take(&mut batch.ignored);
    let now_ms = u64::try_from(now.unix()).unwrap_or(0) * 1000;
    let batch_id = JobId::generate_at(now_ms);
    let total = u32::try_from(batch.documents.len()).unwrap_or(u32::MAX);
    let key = headers.idempotency_key;
    let made = Made::Batch { batch_id: batch_id.clone(), documents: total };
    let idempotency = admit(limiter, (cfg, account), key, body, made, None).await?;
    match &idempotency {
        Idempotency::Seen(IdempotencyRecord {
            batch_id: Some(batch_id),
            batch_documents: Some(documents),
            ..
        }) => {
            // The ids follow from the batch's: nothing to read from KV (which, elsewhere than
            // where the batch was made, may not show it yet).
            let ids: Vec<JobId> =
                (0..*documents).filter_map(|i| document_job_id(batch_id, i)).collect();
            let accepted = BatchAccepted::new(batch_id.clone(), &ids);
            return Ok(SubmittedBatch { submission: BatchSubmission::Replayed(accepted), ignored });
        }
        // The key made a single job: the same body cannot be a batch too.
        Idempotency::Seen(_) => return Err(idempotency_conflict()),
        Idempotency::Claimed(_) | Idempotency::Without => {}
    }
    let stores = (jobs, render_batches, limiter);
    let made = make_batch(stores, account, &headers, batch, batch_id, now).await;
    settle(limiter, account, idempotency, made.is_ok()).await;
    made.map(|accepted| SubmittedBatch { submission: BatchSubmission::Accepted(accepted), ignored })
}

/// The batch itself: its progress, its record, its specs and its messages.
async fn make_batch(
    (jobs, render_batches, limiter): (&impl Kv, &impl Queue<RenderJobMessage>, &impl Limiter),
    account: &Account,
    headers: &SubmitHeaders<'_>,
    mut batch: tailpdf_shared::batch::ValidBatch,
    batch_id: JobId,
    now: Timestamp,
) -> Result<BatchAccepted, EdgeError> {
    batch.shared.no_store = headers.no_store;
    let total = u32::try_from(batch.documents.len()).unwrap_or(u32::MAX);
    // Every index has one: a ULID is 26 characters and MAX_BATCH_DOCUMENTS fits the index's 4.
    let job_ids: Vec<JobId> = (0..total).filter_map(|i| document_job_id(&batch_id, i)).collect();
    let shared_len = json_len(&batch.shared);
    let places: Vec<SpecAt> =
        (0..batch.documents.len()).map(|i| spec_at(&batch, i, shared_len)).collect();
    // Progress first: a document's first event must find its batch. Unlike the limits, which
    // let requests through when the object is out of reach, a batch cannot be counted without
    // it: 503.
    let start = BatchRequest::Start { batch_id: batch_id.clone(), total };
    limiter.batch(&account.account, &start).await.map_err(progress_unavailable)?;
    let record = BatchRecord {
        batch_id: batch_id.clone(),
        account: account.account.clone(),
        created_at: now,
        webhook_url: batch.webhook_url.as_ref().map(|u| SecretUrl::new(u.as_str())),
        documents: batch
            .documents
            .iter()
            .zip(&places)
            .map(|(document, at)| BatchDocument {
                webhook_url: document.webhook_url.as_ref().map(|u| SecretUrl::new(u.as_str())),
                spec_stored: *at == SpecAt::Own,
                spec_packed: *at == SpecAt::Pack,
            })
            .collect(),
    };
    // The documents' jobs are read from here until they end: no job:{id} each. Written with
    // the first specs, before any message.
    let mut out = Outbox::default();
    out.write(Entry::json(batch_key(&batch_id), &record, JOB_TTL_OPEN_SECS)?);

    // Range by range, the specs that do not travel join the writes and the range's messages
    // the chunk; both go out as they fill (writes first, so that a message always finds its
    // spec), so only a chunk of each is held at a time.
    for pack in 0..total.div_ceil(SPECS_PER_PACK) {
        let range = pack_range(pack, batch.documents.len());
        let mut parts = BTreeMap::new();
        for index in range.clone() {
            match places[index] {
                SpecAt::Message => {}
                SpecAt::Own => {
                    let spec = batch.spec(index);
                    out.write(Entry::json(spec_key(&job_ids[index]), &spec, JOB_TTL_OPEN_SECS)?);
                }
                SpecAt::Pack => {
                    parts.insert(
                        u32::try_from(index).unwrap_or(u32::MAX),
                        batch.documents[index].part(),
                    );
                }
            }
        }
        if !parts.is_empty() {
            let pack_of = SpecPack { shared: batch.shared.clone(), documents: parts };
            out.write(Entry::json(specs_key(&batch_id, pack), &pack_of, JOB_TTL_OPEN_SECS)?);
        }
        if out.writes_full() {
            out.flush_writes(jobs).await?;
        }
        for index in range {
            let document = &batch.documents[index];
            let upload_url = SecretUrl::new(document.upload_url.as_str());
            let job_id = job_ids[index].clone();
            // Otherwise the renderer fetches it (GET /internal/jobs/{id}/spec).
            let spec = (places[index] == SpecAt::Message).then(|| batch.spec(index));
            let mut message =
                RenderJobMessage::with_spec(job_id, &account.account, upload_url, spec);
            message.traceparent = headers.trace.map(|t| t.child().header());
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            message.batch = Some(BatchRef { batch_id: batch_id.clone(), index });
            out.send(jobs, render_batches, message).await?;
        }
    }
    out.flush(jobs, render_batches).await?;

    Ok(BatchAccepted::new(batch_id, &job_ids))
}

/// What a submission has yet to write and send: the writes go out before the messages.
#[derive(Default)]
struct Outbox {
    writes: Vec<Entry>,
    write_bytes: usize,
    chunk: Chunk,
}

impl Outbox {
    fn write(&mut self, entry: Entry) {
        self.write_bytes += entry.key.len() + entry.value.len();
        self.writes.push(entry);
    }

    /// Enough writes for one request to the batch's object.
    fn writes_full(&self) -> bool {
        self.write_bytes >= PUT_MANY_BYTES
    }

    async fn flush_writes(&mut self, jobs: &impl Kv) -> Result<(), StoreError> {
        if !self.writes.is_empty() {
            jobs.put_many(&self.writes).await?;
        }
        (self.writes, self.write_bytes) = (Vec::new(), 0);
        Ok(())
    }

    async fn send(
        &mut self,
        jobs: &impl Kv,
        render_batches: &impl Queue<RenderJobMessage>,
        message: RenderJobMessage,
    ) -> Result<(), StoreError> {
        let size = json_len(&message).min(SEND_MANY_MAX_BYTES);
        if !self.chunk.fits(size) {
            self.flush(jobs, render_batches).await?;
        }
        self.chunk.push(message, size);
        Ok(())
    }

    async fn flush(
        &mut self,
        jobs: &impl Kv,
        render_batches: &impl Queue<RenderJobMessage>,
    ) -> Result<(), StoreError> {
        self.flush_writes(jobs).await?;
        self.chunk.flush(render_batches).await
    }
}

/// Messages that go in one `sendBatch`.
#[derive(Default)]
struct Chunk {
    messages: Vec<RenderJobMessage>,
    bytes: usize,
}

impl Chunk {
    fn fits(&self, size: usize) -> bool {
        self.messages.len() < SEND_MANY_MAX_MESSAGES && self.bytes + size <= SEND_MANY_MAX_BYTES
    }

    fn push(&mut self, message: RenderJobMessage, size: usize) {
        self.messages.push(message);
        self.bytes += size;
    }

    async fn flush(
        &mut self,
        render_batches: &impl Queue<RenderJobMessage>,
    ) -> Result<(), StoreError> {
        if self.messages.is_empty() {
            return Ok(());
        }
        render_batches.send_many(&self.messages).await?;
        *self = Self::default();
        Ok(())
    }
}

fn progress_unavailable(e: StoreError) -> EdgeError {
    EdgeError::unavailable(format!("Batch progress is unavailable ({}); retry shortly.", e.0), 5)
}

/// `GET /batches/{id}`: only the owning account sees the batch; a completed one for the
/// ended-job TTL after it completed.
pub async fn batch_status(
    jobs: &impl Kv,
    limiter: &impl Limiter,
    cfg: &EdgeConfig,
    account: &Account,
    id: &str,
    now: Timestamp,
) -> Result<BatchView, EdgeError> {
    let not_found = || {
        EdgeError::Unknown(format!(
            "No batch {id} for this API key (batches are kept for an hour after they complete)."
        ))
    };
    let id = JobId::parse(id).map_err(|_| not_found())?;
    let record = get_json::<BatchRecord>(jobs, &batch_key(&id)).await?.ok_or_else(not_found)?;
    if record.account != account.account {
        return Err(not_found());
    }
    let status = BatchRequest::Status { batch_id: id.clone() };
    let snapshot = limiter
        .batch(&account.account, &status)
        .await
        .map_err(progress_unavailable)?
        .ok_or_else(not_found)?;
    let completed_at = completed_at(&snapshot);
    if !cfg.still_kept(completed_at, now) {
        return Err(not_found());
    }
    Ok(BatchView::new(id, record.created_at, completed_at, states(&record, &snapshot)))
}

fn completed_at(snapshot: &BatchSnapshot) -> Option<Timestamp> {
    let ms = snapshot.completed_ms?;
    Timestamp::from_unix(i64::try_from(ms / 1000).ok()?).ok()
}

fn states(record: &BatchRecord, snapshot: &BatchSnapshot) -> Vec<BatchJobState> {
    record
        .job_ids()
        .into_iter()
        .zip(snapshot.statuses())
        .map(|(job_id, status)| BatchJobState { job_id, status })
        .collect()
}

/// Reports a batch document's state (after an event) to the batch's progress. The report
/// that completes the batch, and any end event repeated after it (its first attempt may have
/// failed before the webhook was queued), queue `batch.completed` unless it was queued; the
/// end that leaves no document of its pack's range open deletes the pack.
pub(crate) async fn report(
    jobs: &impl Kv,
    webhooks: &impl Queue<WebhookMessage>,
    limiter: &impl Limiter,
    cfg: &EdgeConfig,
    job: &StoredJob,
    batch: &BatchRef,
    ended_by_this: bool,
) -> Result<(), EdgeError> {
    let progress = BatchRequest::Progress {
        batch_id: batch.batch_id.clone(),
        index: batch.index,
        status: job.record.status,
        done_ttl_secs: cfg.job_ttl_done_secs,
    };
    let snapshot =
        limiter.batch(&job.base.account, &progress).await.map_err(progress_unavailable)?;
    // Unknown: the batch's progress expired (a day after it started); nothing to complete,
    // and its packs expire with it.
    let Some(snapshot) = snapshot else { return Ok(()) };
    // The last of a pack's documents to end deletes it; again on a repeated end (the delete
    // may have failed the first time).
    if job.base.spec_pack && job.record.status.is_terminal() {
        let pack = batch.index / SPECS_PER_PACK;
        let range = pack_range(pack, snapshot.states.len());
        if snapshot.statuses().skip(range.start).take(range.len()).all(JobStatus::is_terminal) {
            jobs.delete(&specs_key(&batch.batch_id, pack)).await?;
        }
    }
    if snapshot.completed_now || (snapshot.is_complete() && ended_by_this) {
        queue_batch_webhook_once(jobs, webhooks, cfg, &batch.batch_id, &snapshot).await?;
    }
    Ok(())
}

/// Queues `batch.completed` unless it was queued (`batch:{id}:webhook_queued`). Its body is
/// the same whichever call queues it: the states and the time the batch completed.
async fn queue_batch_webhook_once(
    jobs: &impl Kv,
    webhooks: &impl Queue<WebhookMessage>,
    cfg: &EdgeConfig,
    batch_id: &JobId,
    snapshot: &BatchSnapshot,
) -> Result<(), EdgeError> {
    let marker = batch_webhook_queued_key(batch_id);
    if jobs.get(&marker).await?.is_some() {
        return Ok(());
    }
    let Some(record) = get_json::<BatchRecord>(jobs, &batch_key(batch_id)).await? else {
        return Ok(());
    };
    let (Some(url), Some(at)) = (&record.webhook_url, completed_at(snapshot)) else {
        return Ok(());
    };
    let payload = BatchWebhookPayload::completed(batch_id.clone(), at, states(&record, snapshot));
    let message = WebhookMessage {
        account: record.account.clone(),
        url: url.clone(),
        payload: payload.into(),
        attempt: 0,
    };
    webhooks.send(&message).await?;
    put_json(jobs, &marker, &true, cfg.job_ttl_done_secs).await?;
    Ok(())
}

/// The `Location` of an accepted batch.
pub fn location(accepted: &BatchAccepted) -> &str {
    &accepted.status_url
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tailpdf_shared::{
        job::RenderResult, trace::TraceParent, webhook::WebhookBody, ErrorCode, JobEvent,
    };

    use super::*;
    use crate::{
        events::apply_event,
        jobs::{
            job_status, submit,
            tests::{acct, cfg, lim, run, ts},
        },
        limits::tests::MemoryLimiter,
        store::{
            load_job,
            memory::{MemoryKv, MemoryQueue},
            Limits, WebhookRecord,
        },
    };
    use tailpdf_shared::ApiError;

    const UPLOAD: &str = "https://b.s3.amazonaws.com/a.pdf?X-Amz-Signature=abc";

    fn body(n: usize) -> Vec<u8> {
        let documents: Vec<_> = (0..n)
            .map(|i| json!({"content": format!("<p>{i}</p>"), "upload_url": UPLOAD}))
            .collect();
        json!({"webhook_url": "https://api.example.com/batch", "pdfOptions": {"format": "A4"},
               "documents": documents})
        .to_string()
        .into_bytes()
    }

    async fn batch(
        (jobs, queue, limiter): (&MemoryKv, &MemoryQueue<RenderJobMessage>, &MemoryLimiter),
        key: Option<&str>,
        body: &[u8],
    ) -> Result<BatchSubmission, EdgeError> {
        let headers = SubmitHeaders { idempotency_key: key, ..SubmitHeaders::default() };
        let stores = (jobs, queue, limiter);
        submit_batch(stores, &cfg(), &acct("a"), headers, body, ts(0)).await.map(|s| s.submission)
    }

    fn accepted(s: BatchSubmission) -> BatchAccepted {
        match s {
            BatchSubmission::Accepted(a) => a,
            BatchSubmission::Replayed(_) => panic!("replayed"),
        }
    }

    #[test]
    fn a_batch_makes_one_job_per_document_from_one_record() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim());
            let trace =
                TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                    .unwrap();
            let headers = SubmitHeaders { trace: Some(&trace), ..SubmitHeaders::default() };
            let account = Account {
                limits: Limits { requests_per_minute: Some(5), jobs_in_flight: Some(1) },
                ..acct("a")
            };
            let submitted =
                submit_batch((&jobs, &queue, &limiter), &cfg(), &account, headers, &body(3), ts(0))
                    .await
                    .unwrap();
            let a = accepted(submitted.submission);
            assert_eq!(a.status_url, format!("/batches/{}", a.batch_id));
            assert_eq!(a.jobs.len(), 3, "three documents, and not limited to one job in flight");
            // One record for the batch, none for each document.
            assert_eq!(*jobs.writes.borrow(), [batch_key(&a.batch_id)]);
            let sent = queue.0.borrow().clone();
            assert_eq!(*queue.3.borrow(), [3], "one sendBatch");
            for (i, (job, message)) in a.jobs.iter().zip(sent.iter()).enumerate() {
                let index = u32::try_from(i).unwrap();
                assert_eq!(job.job_id, document_job_id(&a.batch_id, index).unwrap());
                assert_eq!(message.job_id, job.job_id);
                let expected = BatchRef { batch_id: a.batch_id.clone(), index };
                assert_eq!(message.batch.as_ref(), Some(&expected));
                assert_eq!(message.spec.as_ref().unwrap().content, format!("<p>{i}</p>"));
                let tp = TraceParent::parse(message.traceparent.as_deref().unwrap()).unwrap();
                assert_eq!(tp.trace_id(), trace.trace_id());
                let job = load_job(&jobs, &job.job_id, WebhookRecord::Skip).await.unwrap().unwrap();
                let base = job.base;
                assert_eq!(
                    (base.batch, base.holds_slot, base.webhook_url, base.spec_stored),
                    (Some(expected), false, None, false)
                );
                assert_eq!((base.account.as_str(), base.created_at), ("a", ts(0)));
                assert_eq!(job.record.status, JobStatus::Pending);
            }
            let record: BatchRecord =
                get_json(&jobs, &batch_key(&a.batch_id)).await.unwrap().unwrap();
            assert_eq!(
                record.job_ids(),
                a.jobs.iter().map(|j| j.job_id.clone()).collect::<Vec<_>>()
            );
            assert_eq!(jobs.ttl(&batch_key(&a.batch_id)), Some(JOB_TTL_OPEN_SECS));
            assert!(
                !jobs.get(&batch_key(&a.batch_id)).await.unwrap().unwrap().contains("X-Amz"),
                "no presigned URL is stored"
            );
            // No slot taken: the account's one job in flight is still free.
            let start =
                crate::limits::LimitRequest::StartJob { job_id: JobId::generate(), in_flight: 1 };
            let answer = limiter.ask("a", &start).await.unwrap();
            assert_eq!(answer, crate::limits::LimitAnswer::Allowed);
        });
    }

    fn document(content: &str) -> serde_json::Value {
        json!({"content": content, "upload_url": UPLOAD})
    }

    /// A `config` that makes every document's spec too large for its message.
    fn large_config() -> serde_json::Value {
        json!({"theme": {"extend": {"colors": {"brand": "x".repeat(70_000)}}}})
    }

    #[test]
    fn messages_go_in_chunks_queues_accepts_and_large_specs_are_stored() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim());
            let a = accepted(batch((&jobs, &queue, &limiter), None, &body(250)).await.unwrap());
            assert_eq!(*queue.3.borrow(), [100, 100, 50]);
            assert_eq!(queue.0.borrow().len(), 250);
            // Documents of 60 KB travel inline up to 256 KB a call: 4 a call.
            let (jobs, queue) = (MemoryKv::default(), MemoryQueue::default());
            let big = "x".repeat(60_000);
            let documents: Vec<_> = (0..9).map(|_| document(&big)).collect();
            let body = json!({ "documents": documents }).to_string();
            batch((&jobs, &queue, &limiter), None, body.as_bytes()).await.unwrap();
            assert_eq!(*queue.3.borrow(), [4, 4, 1]);
            // Too large to travel: a large content is kept at job:{id}:spec, as a single
            // job's; a smaller one in its range's pack, with the shared parts once.
            let (jobs, queue) = (MemoryKv::default(), MemoryQueue::default());
            let (huge, large) = ("x".repeat(OWN_SPEC_MIN_CONTENT_BYTES), "y".repeat(200_000));
            let body = json!({"pdfOptions": {"format": "A5"},
                              "documents": [document(&huge), document(&large), document("<p>2</p>")]})
            .to_string();
            let b =
                accepted(batch((&jobs, &queue, &limiter), None, body.as_bytes()).await.unwrap());
            let ids: Vec<&JobId> = b.jobs.iter().map(|j| &j.job_id).collect();
            let sent = queue.0.borrow().clone();
            assert!(sent[0].spec.is_none() && sent[1].spec.is_none() && sent[2].spec.is_some());
            assert_eq!(
                *jobs.writes.borrow(),
                [batch_key(&b.batch_id), spec_key(ids[0]), specs_key(&b.batch_id, 0)]
            );
            for (id, content) in [(ids[0], &huge), (ids[1], &large)] {
                let spec = crate::jobs::job_spec(&jobs, id.as_str()).await.unwrap();
                assert_eq!(
                    (&spec.content, spec.pdf_options.format.as_deref()),
                    (content, Some("A5"))
                );
            }
            let e = crate::jobs::job_spec(&jobs, ids[2].as_str()).await.unwrap_err();
            assert_eq!(e.status(), 404, "it travels in its message");
            let pack: SpecPack =
                get_json(&jobs, &specs_key(&b.batch_id, 0)).await.unwrap().unwrap();
            assert_eq!(pack.documents.keys().copied().collect::<Vec<_>>(), [1]);
            let record: BatchRecord =
                get_json(&jobs, &batch_key(&b.batch_id)).await.unwrap().unwrap();
            let flags: Vec<_> =
                record.documents.iter().map(|d| (d.spec_stored, d.spec_packed)).collect();
            assert_eq!(flags, [(true, false), (false, true), (false, false)]);
            assert!(record.job_base(2).unwrap().spec_pack, "its range has a pack");
            assert_ne!(a.batch_id, b.batch_id);
        });
    }

    /// Every KV operation of a submission, the API key's read included, on two batches of
    /// 1,000 documents: every spec in a pack (a large `config`), and the most specs of their
    /// own a 64 MiB body allows (contents of quotes, each twice its length as JSON), with a
    /// small document in every pack's range.
    #[test]
    fn a_batch_of_a_thousand_documents_stays_well_within_1000_kv_operations() {
        run(async {
            let key = "the-key";
            let keys = MemoryKv::default();
            let key_record = format!("key:{}", tailpdf_shared::signing::hash_api_key(key));
            put_json(&keys, &key_record, &acct("a"), 3600).await.unwrap();
            let submit_ops = |body: Vec<u8>| {
                let keys = &keys;
                async move {
                    let (jobs, queue, limiter) =
                        (MemoryKv::default(), MemoryQueue::default(), lim());
                    keys.ops.set(0);
                    let account = crate::admission::authenticate(keys, Some(key)).await.unwrap();
                    let headers =
                        SubmitHeaders { idempotency_key: Some("k"), ..SubmitHeaders::default() };
                    let stores = (&jobs, &queue, &limiter);
                    let submitted =
                        submit_batch(stores, &cfg(), &account, headers, &body, ts(0)).await;
                    let a = accepted(submitted.unwrap().submission);
                    assert_eq!(a.jobs.len(), MAX_BATCH_DOCUMENTS);
                    assert_eq!(queue.0.borrow().len(), MAX_BATCH_DOCUMENTS);
                    let own = jobs.writes.borrow().iter().filter(|k| k.ends_with(":spec")).count();
                    let packs =
                        jobs.writes.borrow().iter().filter(|k| k.contains(":specs:")).count();
                    (keys.ops.get() + jobs.ops.get(), own, packs)
                }
            };

            let documents: Vec<_> = (0..MAX_BATCH_DOCUMENTS)
                .map(|i| {
                    let hook = format!("https://api.example.com/hook?document={i}");
                    json!({"content": "<p>x</p>", "upload_url": UPLOAD, "webhook_url": hook})
                })
                .collect();
            let body = json!({"config": large_config(), "documents": documents});
            let (all_packed, own, packs) = submit_ops(body.to_string().into_bytes()).await;
            assert_eq!((own, packs), (0, 125));
            // The API key, the record, the packs (the Idempotency-Key is the account object's).
            assert_eq!(all_packed, 1 + 1 + 125);

            let quotes = "\"".repeat(OWN_SPEC_MIN_CONTENT_BYTES / 2 + 1);
            let (large, small) = (document(&quotes), document("<p>x</p>"));
            let per_large = large.to_string().len() + 1;
            let room = MAX_BATCH_BODY_BYTES - 100_000 - MAX_BATCH_DOCUMENTS * 80;
            let n_large = room / per_large;
            let per_pack = SPECS_PER_PACK as usize;
            // The first of each range is small, the others large while they fit.
            let mut remaining = n_large;
            let documents: Vec<_> = (0..MAX_BATCH_DOCUMENTS)
                .map(|i| {
                    if i % per_pack != 0 && remaining > 0 {
                        remaining -= 1;
                        large.clone()
                    } else {
                        small.clone()
                    }
                })
                .collect();
            let body = json!({"config": large_config(), "documents": documents}).to_string();
            assert!(body.len() <= MAX_BATCH_BODY_BYTES, "{}", body.len());
            let (most, own, packs) = submit_ops(body.into_bytes()).await;
            assert_eq!((own, packs), (n_large, 125));
            assert_eq!(most, 1 + 1 + n_large + 125);
            assert!(most <= SUBMIT_KV_OPERATIONS_MAX, "{most}");
            eprintln!(
                "KV operations of one submission: {all_packed} (every spec in a pack), \
                 {most} ({n_large} specs of their own, 125 packs)"
            );
            // Any batch: at most one spec of its own per OWN_SPEC_MIN_CONTENT_BYTES of body.
            assert!(n_large <= MAX_BATCH_BODY_BYTES / OWN_SPEC_MIN_CONTENT_BYTES);
            assert!(most < 500, "{most}: well within Cloudflare's 1,000");
        });
    }

    #[test]
    fn a_document_s_job_is_read_from_its_batch_from_the_202_until_it_ends() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim_at(0));
            let body = json!({"webhook_url": "https://api.example.com/batch", "documents": [
                {"content": "<p>0</p>", "upload_url": UPLOAD, "webhook_url": "https://api.example.com/doc?n=0"},
                document("<p>1</p>"),
            ]});
            let a = accepted(
                batch((&jobs, &queue, &limiter), None, body.to_string().as_bytes()).await.unwrap(),
            );
            let (c, webhooks) = (cfg(), MemoryQueue::default());
            let ids: Vec<String> = a.jobs.iter().map(|j| j.job_id.to_string()).collect();
            // Right after the 202: pending, for its account only.
            for id in &ids {
                let v = job_status(&jobs, &c, &acct("a"), id, ts(1)).await.unwrap();
                assert_eq!((v.status, v.created_at), (JobStatus::Pending, ts(0)));
                let e = job_status(&jobs, &c, &acct("b"), id, ts(1)).await.unwrap_err();
                assert_eq!(e.status(), 404, "another account's");
            }
            // Lower case is the same job, as for any id.
            let lower = ids[0].to_lowercase();
            assert!(job_status(&jobs, &c, &acct("a"), &lower, ts(1)).await.is_ok());
            // An index past the batch's documents, or of a day-old batch that does not exist:
            // 404.
            let old = JobId::from_parts((1_734_258_600 - 2 * 86_400) * 1000, 1);
            for id in [document_job_id(&a.batch_id, 2).unwrap(), document_job_id(&old, 0).unwrap()]
            {
                let e = job_status(&jobs, &c, &acct("a"), id.as_str(), ts(1)).await.unwrap_err();
                assert_eq!(e.status(), 404, "{id}");
                let processing = ev(&JobEvent::Processing { at: ts(1) });
                let e = apply_event(&jobs, &webhooks, &limiter, &c, id.as_str(), &processing).await;
                assert_eq!(e.unwrap_err().status(), 404);
            }
            // A young batch's that was never made: its batch's object, read back at once, does
            // not have it.
            let young = document_job_id(&JobId::from_parts(1_734_258_600 * 1000, 9), 0).unwrap();
            let processing = ev(&JobEvent::Processing { at: ts(1) });
            let e = apply_event(&jobs, &webhooks, &limiter, &c, young.as_str(), &processing).await;
            assert_eq!(e.unwrap_err().status(), 404);
            let e = crate::jobs::job_spec(&jobs, young.as_str()).await.unwrap_err();
            assert_eq!(e.status(), 404);
            // The batch's id itself is no job.
            let e = job_status(&jobs, &c, &acct("a"), a.batch_id.as_str(), ts(1)).await;
            assert_eq!(e.unwrap_err().status(), 404);

            // Events move it; the end writes its own job:{id}, for the ended-job TTL.
            let processing = ev(&JobEvent::Processing { at: ts(2) });
            let ack = apply_event(&jobs, &webhooks, &limiter, &c, &ids[0], &processing).await;
            assert_eq!(ack.unwrap().status, JobStatus::Processing);
            let v = job_status(&jobs, &c, &acct("a"), &ids[0], ts(3)).await.unwrap();
            assert_eq!(v.status, JobStatus::Processing);
            assert!(jobs.get(&crate::store::job_key(&a.jobs[0].job_id)).await.unwrap().is_none());
            let done = ev(&JobEvent::Completed { at: ts(4), result: RESULT });
            apply_event(&jobs, &webhooks, &limiter, &c, &ids[0], &done).await.unwrap();
            let key = crate::store::job_key(&a.jobs[0].job_id);
            assert_eq!(jobs.ttl(&key), Some(c.job_ttl_done_secs));
            // Its own webhook, to its own URL.
            let sent = webhooks.0.borrow().clone();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].url.expose(), "https://api.example.com/doc?n=0");
            assert_eq!(sent[0].payload.webhook_id(), format!("msg_{}_completed", ids[0]));
            let v = job_status(&jobs, &c, &acct("a"), &ids[0], ts(5)).await.unwrap();
            assert_eq!((v.status, v.completed_at), (JobStatus::Completed, Some(ts(4))));

            // The other dead-letters: it fails as any job, and the batch completes with its
            // one webhook.
            limiter.now_ms.set(u64::try_from(ts(600).unix()).unwrap() * 1000);
            let id1 = &a.jobs[1].job_id;
            let ack = crate::events::apply(
                &jobs,
                &webhooks,
                &limiter,
                &c,
                id1,
                &crate::events::gave_up(ts(600)),
            )
            .await;
            assert!(ack.unwrap().applied);
            let v = job_status(&jobs, &c, &acct("a"), id1.as_str(), ts(601)).await.unwrap();
            assert_eq!(v.status, JobStatus::Failed);
            let sent = webhooks.0.borrow().clone();
            assert_eq!(sent.len(), 2, "no render.failed (no webhook_url), one batch.completed");
            assert_eq!(sent[1].url.expose(), "https://api.example.com/batch");
            let WebhookBody::Batch(p) = &sent[1].payload else { panic!("{:?}", sent[1]) };
            assert_eq!((p.data.completed, p.data.failed), (1, 1));
            assert_eq!(p.data.jobs[1].job_id, *id1);

            // Ended jobs read their own base: the batch's record is no longer needed.
            jobs.remove(&batch_key(&a.batch_id));
            for id in &ids {
                assert!(job_status(&jobs, &c, &acct("a"), id, ts(602)).await.is_ok());
            }
            assert_eq!(
                job_status(&jobs, &c, &acct("a"), &ids[0], ts(4 + 3601))
                    .await
                    .unwrap_err()
                    .status(),
                404
            );
        });
    }

    #[test]
    fn a_document_loads_in_one_round_of_reads() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim());
            let a = accepted(batch((&jobs, &queue, &limiter), None, &body(2)).await.unwrap());
            let id = &a.jobs[1].job_id;
            let reads = crate::store::memory::Reads::of(&jobs);
            let job = load_job(&reads, id, WebhookRecord::Read).await.unwrap().unwrap();
            assert_eq!(job.base.batch.unwrap().index, 1);
            assert_eq!(reads.keys.borrow().len(), 6, "{:?}", reads.keys.borrow());
            assert!(reads.keys.borrow().contains(&batch_key(&a.batch_id)));
            assert_eq!(reads.most_at_once.get(), 6, "all at once");
        });
    }

    #[test]
    fn a_pack_is_deleted_when_the_last_document_of_its_range_ends() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim_at(0));
            let documents: Vec<_> = (0..10).map(|i| document(&format!("<p>{i}</p>"))).collect();
            let body = json!({"config": large_config(), "documents": documents}).to_string();
            let a =
                accepted(batch((&jobs, &queue, &limiter), None, body.as_bytes()).await.unwrap());
            assert!(queue.0.borrow().iter().all(|m| m.spec.is_none()));
            let (packs, c, webhooks) = (
                [specs_key(&a.batch_id, 0), specs_key(&a.batch_id, 1)],
                cfg(),
                MemoryQueue::default(),
            );
            for (i, job) in a.jobs.iter().enumerate() {
                let spec = crate::jobs::job_spec(&jobs, job.job_id.as_str()).await.unwrap();
                assert_eq!(spec.content, format!("<p>{i}</p>"));
                assert!(spec.config.is_some(), "with the shared parts");
            }
            let done = ev(&JobEvent::Completed { at: ts(1), result: RESULT });
            let end = |i: usize| {
                let (jobs, webhooks, limiter, c, id) =
                    (&jobs, &webhooks, &limiter, &c, a.jobs[i].job_id.to_string());
                let done = done.clone();
                async move { apply_event(jobs, webhooks, limiter, c, &id, &done).await.unwrap() }
            };
            for i in [7, 0, 1, 2, 3, 4, 5] {
                end(i).await;
            }
            assert!(jobs.deletes.borrow().is_empty(), "document 6 has not ended");
            let processing = ev(&JobEvent::Processing { at: ts(1) });
            let id6 = a.jobs[6].job_id.to_string();
            apply_event(&jobs, &webhooks, &limiter, &c, &id6, &processing).await.unwrap();
            assert!(jobs.deletes.borrow().is_empty());
            end(6).await;
            assert_eq!(*jobs.deletes.borrow(), [packs[0].clone()]);
            assert!(jobs.get(&packs[1]).await.unwrap().is_some(), "another range's");
            let e = crate::jobs::job_spec(&jobs, a.jobs[6].job_id.as_str()).await.unwrap_err();
            assert_eq!(e.status(), 404);
            // A repeated end deletes again (the first delete may have failed).
            end(6).await;
            assert_eq!(jobs.deletes.borrow().len(), 2);
            end(8).await;
            end(9).await;
            assert_eq!(jobs.deletes.borrow().last(), Some(&packs[1]));
            assert!(jobs.get(&packs[1]).await.unwrap().is_none());
        });
    }

    #[test]
    fn a_spec_s_length_is_found_without_assembling_it_and_decides_as_the_message_does() {
        let parse = |documents: Vec<serde_json::Value>| {
            let body = json!({"pdfOptions": {"format": "A4", "metadata": {"title": "Batch \"one\"\n"}},
                              "fonts": ["Inter:wght@400"], "documents": documents});
            parse_batch_request(body.to_string().as_bytes(), cfg().url_policy).unwrap()
        };
        let shared_len = json_len(&parse(vec![document("x")]).shared);
        // Contents whose specs are exactly at the limit and one byte over, quotes (two bytes
        // each as JSON) included.
        let room = INLINE_SPEC_MAX_BYTES - shared_len;
        let quoted = |x: usize| format!("{}{}", "x".repeat(x), "\"".repeat(100));
        let batch = parse(vec![
            document("<p>\"quoted\" \\ \n \u{7} é 😀</p>"),
            document(&quoted(room - 200)),
            document(&quoted(room - 199)),
            document(&"x".repeat(room)),
            json!({"content": "x".repeat(room), "upload_url": UPLOAD, "metadata": {"author": "A"}}),
        ]);
        let mut places = Vec::new();
        for i in 0..batch.documents.len() {
            let spec = batch.spec(i);
            assert_eq!(spec_len(&batch, i, shared_len), serde_json::to_vec(&spec).unwrap().len());
            let at = spec_at(&batch, i, shared_len);
            assert_eq!(at == SpecAt::Message, RenderJobMessage::travels_inline(&spec), "{i}");
            places.push(at);
        }
        assert_eq!(
            places,
            [SpecAt::Message, SpecAt::Message, SpecAt::Pack, SpecAt::Message, SpecAt::Pack]
        );
    }

    #[test]
    fn idempotency_keys_replay_the_batch_or_conflict_across_both_endpoints() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim());
            let stores = (&jobs, &queue, &limiter);
            let first = accepted(batch(stores, Some("k"), &body(2)).await.unwrap());
            let again = batch(stores, Some("k"), &body(2)).await.unwrap();
            assert_eq!(again, BatchSubmission::Replayed(first.clone()));
            assert_eq!(queue.0.borrow().len(), 2, "no second batch");
            let e = ApiError::from(batch(stores, Some("k"), &body(3)).await.unwrap_err());
            assert_eq!((e.status(), e.code), (409, ErrorCode::IdempotencyConflict));
            // One key space with POST /pdf: a key of a job is a conflict here, and back.
            let job = br#"{"content":"x","async":true,"upload_url":"https://b.example.com/a"}"#;
            let headers = SubmitHeaders { idempotency_key: Some("j"), ..SubmitHeaders::default() };
            submit(stores, &cfg(), &acct("a"), headers, job, ts(0)).await.unwrap();
            assert_eq!(batch(stores, Some("j"), job).await.unwrap_err().status(), 400);
            let e = batch(stores, Some("j"), &body(2)).await.unwrap_err();
            assert_eq!(e.status(), 409);
            let headers = SubmitHeaders { idempotency_key: Some("k"), ..SubmitHeaders::default() };
            let e = submit(stores, &cfg(), &acct("a"), headers, &body(2), ts(0)).await;
            assert!(e.is_err(), "a batch's body is no POST /pdf body either");
            let e = batch(stores, Some("has space"), &body(2)).await.unwrap_err();
            assert_eq!(e.status(), 400);
        });
    }

    #[test]
    fn without_the_progress_object_a_batch_is_not_accepted() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim());
            limiter.down.set(true);
            let e =
                ApiError::from(batch((&jobs, &queue, &limiter), None, &body(2)).await.unwrap_err());
            assert_eq!((e.status(), e.retry_after_secs), (503, Some(5)));
            assert!(queue.0.borrow().is_empty() && jobs.writes.borrow().is_empty());
        });
    }

    fn ev(e: &JobEvent) -> Vec<u8> {
        serde_json::to_vec(e).unwrap()
    }

    const RESULT: RenderResult =
        RenderResult { file_size_bytes: 1, render_duration_ms: 2, upload_duration_ms: 3 };

    /// Counters whose clock reads `ts(s)`.
    fn lim_at(s: i64) -> MemoryLimiter {
        let limiter = lim();
        limiter.now_ms.set(u64::try_from(ts(s).unix()).unwrap() * 1000);
        limiter
    }

    #[test]
    fn the_batch_completes_once_with_one_webhook_whatever_repeats_and_failures() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim_at(0));
            let a = accepted(batch((&jobs, &queue, &limiter), None, &body(3)).await.unwrap());
            let c = cfg();
            let ids: Vec<String> = a.jobs.iter().map(|j| j.job_id.to_string()).collect();
            let webhooks = MemoryQueue::failing_first(0);
            let owner = acct("a");
            let status = |at| batch_status(&jobs, &limiter, &c, &owner, a.batch_id.as_str(), at);
            let completed = ev(&JobEvent::Completed { at: ts(5), result: RESULT });
            let failed = ev(&JobEvent::Failed { at: ts(6), error_message: "x".into() });
            apply_event(
                &jobs,
                &webhooks,
                &limiter,
                &c,
                &ids[0],
                &ev(&JobEvent::Processing { at: ts(1) }),
            )
            .await
            .unwrap();
            let v = status(ts(2)).await.unwrap();
            assert_eq!((v.counts.pending, v.counts.processing, v.total), (2, 1, 3));
            assert_eq!(serde_json::to_value(&v).unwrap()["status"], "processing");
            apply_event(&jobs, &webhooks, &limiter, &c, &ids[0], &completed).await.unwrap();
            apply_event(&jobs, &webhooks, &limiter, &c, &ids[0], &completed).await.unwrap();
            apply_event(&jobs, &webhooks, &limiter, &c, &ids[1], &failed).await.unwrap();
            assert!(webhooks.0.borrow().is_empty(), "no webhook for the documents themselves");

            // The last end: the webhook queue refuses, the event is a 503...
            limiter.now_ms.set(u64::try_from(ts(6).unix()).unwrap() * 1000);
            let refusing = MemoryQueue::failing_first(1);
            let e = apply_event(&jobs, &refusing, &limiter, &c, &ids[2], &completed).await;
            assert_eq!(e.unwrap_err().status(), 503);
            // ...the batch is complete all the same...
            let v = status(ts(7)).await.unwrap();
            assert_eq!(v.status, tailpdf_shared::batch::BatchStatus::Completed);
            assert_eq!((v.counts.completed, v.counts.failed), (2, 1));
            // ...and the repeated event queues batch.completed, once.
            for _ in 0..3 {
                apply_event(&jobs, &refusing, &limiter, &c, &ids[2], &completed).await.unwrap();
                apply_event(&jobs, &refusing, &limiter, &c, &ids[0], &completed).await.unwrap();
            }
            let sent = refusing.0.borrow().clone();
            assert_eq!(sent.len(), 1, "one batch.completed");
            let hook = &sent[0];
            assert_eq!(hook.url.expose(), "https://api.example.com/batch");
            assert_eq!(hook.payload.webhook_id(), format!("msg_{}_batch_completed", a.batch_id));
            let WebhookBody::Batch(p) = &hook.payload else { panic!("{hook:?}") };
            assert_eq!((p.data.total, p.data.completed, p.data.failed), (3, 2, 1));
            assert_eq!(p.data.jobs[1].status, JobStatus::Failed);
            assert_eq!(p.data.jobs[2].job_id.as_str(), ids[2]);
            assert_eq!(p.timestamp, ts(6), "when the batch completed, in every attempt");
            // Each job is a job as any other.
            let view = job_status(&jobs, &c, &acct("a"), &ids[1], ts(8)).await.unwrap();
            assert_eq!(view.status, JobStatus::Failed);
        });
    }

    #[test]
    fn a_batch_s_status_is_its_account_s_only_and_kept_an_hour_after_it_completes() {
        run(async {
            let (jobs, queue, limiter) = (MemoryKv::default(), MemoryQueue::default(), lim_at(0));
            let a = accepted(batch((&jobs, &queue, &limiter), None, &body(1)).await.unwrap());
            let c = cfg();
            let id = a.batch_id.as_str();
            assert!(batch_status(&jobs, &limiter, &c, &acct("a"), id, ts(1)).await.is_ok());
            for (account, id) in [("b", id), ("a", "nope"), ("a", "01JFXYZ123456789ABCDEFGH")] {
                let e = batch_status(&jobs, &limiter, &c, &acct(account), id, ts(1)).await;
                let e = ApiError::from(e.unwrap_err());
                assert_eq!(e.status(), 404, "{account} {id}");
                assert!(e.message.starts_with(&format!("No batch {id} for this API key")));
            }
            limiter.now_ms.set(u64::try_from(ts(10).unix()).unwrap() * 1000);
            let done = ev(&JobEvent::Completed { at: ts(10), result: RESULT });
            let webhooks = MemoryQueue::default();
            let job = a.jobs[0].job_id.as_str();
            apply_event(&jobs, &webhooks, &limiter, &c, job, &done).await.unwrap();
            let v = batch_status(&jobs, &limiter, &c, &acct("a"), id, ts(11)).await.unwrap();
            assert_eq!(v.completed_at, Some(ts(10)));
            assert!(batch_status(&jobs, &limiter, &c, &acct("a"), id, ts(3610)).await.is_ok());
            let e = batch_status(&jobs, &limiter, &c, &acct("a"), id, ts(3611)).await;
            assert_eq!(e.unwrap_err().status(), 404);
            // Progress out of reach: 503, for GET and for an event (which comes again).
            limiter.down.set(true);
            let e = batch_status(&jobs, &limiter, &c, &acct("a"), id, ts(12)).await;
            assert_eq!(e.unwrap_err().status(), 503);
            let e = apply_event(&jobs, &webhooks, &limiter, &c, job, &done).await;
            assert_eq!(e.unwrap_err().status(), 503);
        });
    }
}
