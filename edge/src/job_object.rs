//! Each single job's keys live in the job's own Durable Object (binding `JOB_OBJECTS`, class
//! `JobObject`), and a batch's keys and all its documents' in the batch's: one writer per job,
//! which handles one request at a time and reads back its own writes wherever the call came
//! from, where KV shows another location's write up to a minute late and caches a miss for a
//! minute (docs/JOBS-ACROSS-LOCATIONS.md). So the renderer gets a spec written near the
//! client, its events find the job, two ends racing at two locations give one outcome, and
//! `GET /jobs` anywhere shows every transition at once.
//!
//! - [`ObjectRequest`] is what the edge asks an object: a key's value, to keep or drop one or
//!   many, or to apply an event to one of its jobs. Events run inside the object ([`handle`]):
//!   the state machine's read, write and webhook happen with no other request of the job (or
//!   of its batch) in between.
//! - [`Routed`] is the edge's [`Kv`] for job state: a job's keys (`job:{id}`, `job:{id}:…`)
//!   and a batch's (`batch:{id}`, `batch:{id}:…`) go to their object ([`owner`]), everything
//!   else (dead letters) to Workers KV.
//! - [`Ends`] is where a job's events are applied, the renderer's and the ends decided at the
//!   edge (the push consumer's last attempt, a dead letter): in the job's object.

use serde::{Deserialize, Serialize};
use tailpdf_shared::{
    batch::parse_document_job_id,
    messages::{EventAck, WebhookMessage},
    ApiError, ErrorCode, JobEvent, JobId,
};

use crate::{
    config::EdgeConfig,
    error::EdgeError,
    events,
    limits::Limiter,
    store::{put_parts, Entry, Kv, Queue, StoreError, BATCH_PREFIX, JOB_PREFIX, PUT_MANY_BYTES},
};

/// What the edge asks a job's object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ObjectRequest {
    Get {
        key: String,
    },
    /// Several keys at once (a job's load: one request, not six).
    GetMany {
        keys: Vec<String>,
    },
    /// The TTL is KV's way to forget; the object forgets all of a job [`KEPT_MS`] after it
    /// began (its alarm), and reads past an ended job's TTL are 404 (jobs::job_status).
    Put {
        key: String,
        value: String,
        ttl_secs: u64,
    },
    Delete {
        key: String,
    },
    /// Several keys written at once (a batch's record and specs at submission): one request.
    PutMany {
        entries: Vec<Entry>,
    },
    /// Moves a job forward (crate::events::apply), in the object: the object's own job, or
    /// one of its batch's documents.
    Event {
        event: JobEvent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job_id: Option<JobId>,
    },
}

/// The object's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ObjectAnswer {
    Value { value: Option<String> },
    Values { values: Vec<Option<String>> },
    Done,
    Event { ack: EventAck },
    Error { code: ErrorCode, message: String, retry_after_secs: Option<u32> },
}

impl ObjectAnswer {
    /// An error crosses to the object's caller in the API's shape...
    fn error(e: EdgeError) -> Self {
        let e = ApiError::from(e);
        Self::Error { code: e.code, message: e.message, retry_after_secs: e.retry_after_secs }
    }

    /// ...and is the edge's again on the other side.
    fn into_error(self) -> EdgeError {
        match self {
            Self::Error { code: ErrorCode::NotFound, message, .. } => EdgeError::Unknown(message),
            Self::Error { code: ErrorCode::ServiceUnavailable, message, retry_after_secs } => {
                EdgeError::unavailable(message, retry_after_secs.unwrap_or(5))
            }
            Self::Error { code, message, retry_after_secs } => {
                ApiError { retry_after_secs, ..ApiError::new(code, message) }.into()
            }
            other => EdgeError::unavailable(format!("The job's object answered {other:?}."), 5),
        }
    }
}

/// How long a job's object keeps it: a pending job's KV keys lived a day, an ended one's an
/// hour after its end.
pub const KEPT_MS: u64 = 25 * 3600 * 1000;

/// The most one value of an object's storage holds (Cloudflare's limit is 2 MB a value in a
/// SQLite-backed object); a larger one, a spec of a 1 MB document written as JSON escapes, is
/// kept in parts ([`parts`]).
pub const PART_BYTES: usize = 1024 * 1024;

/// `value` cut into parts of at most `max` bytes, at character boundaries.
pub fn parts(value: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = value;
    while rest.len() > max {
        let mut at = max;
        while !rest.is_char_boundary(at) {
            at -= 1;
        }
        let (part, tail) = rest.split_at(at);
        parts.push(part);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// The object that keeps `key`: its job's ([`object_of`]) or its batch's; `None` for a key of
/// neither (dead letters: Workers KV's).
pub fn owner(key: &str) -> Option<JobId> {
    let (id, of_job) = match (key.strip_prefix(JOB_PREFIX), key.strip_prefix(BATCH_PREFIX)) {
        (Some(rest), _) => (rest, true),
        (_, Some(rest)) => (rest, false),
        _ => return None,
    };
    let id = JobId::parse(id.split(':').next()?).ok()?;
    Some(if of_job { object_of(&id) } else { id })
}

/// The object that keeps job `id`: its own, or its batch's for a batch's document (whose id
/// carries the batch's), so that a 1,000-document batch is one object.
pub fn object_of(id: &JobId) -> JobId {
    parse_document_job_id(id).map_or_else(|| id.clone(), |(batch, _)| batch)
}

/// Runs `request` in job `id`'s object; `own` is the object's storage.
pub async fn handle(
    own: &impl Kv,
    (webhooks, limiter): (&impl Queue<WebhookMessage>, &impl Limiter),
    cfg: &EdgeConfig,
    id: &JobId,
    request: ObjectRequest,
) -> ObjectAnswer {
    let done = |r: Result<(), StoreError>| match r {
        Ok(()) => ObjectAnswer::Done,
        Err(e) => ObjectAnswer::error(e.into()),
    };
    match request {
        ObjectRequest::Get { key } => match own.get(&key).await {
            Ok(value) => ObjectAnswer::Value { value },
            Err(e) => ObjectAnswer::error(e.into()),
        },
        ObjectRequest::GetMany { keys } => match own.get_many(&keys).await {
            Ok(values) => ObjectAnswer::Values { values },
            Err(e) => ObjectAnswer::error(e.into()),
        },
        ObjectRequest::Put { key, value, ttl_secs } => done(own.put(&key, &value, ttl_secs).await),
        ObjectRequest::PutMany { entries } => done(own.put_many(&entries).await),
        ObjectRequest::Delete { key } => done(own.delete(&key).await),
        ObjectRequest::Event { event, job_id } => {
            let job = job_id.as_ref().unwrap_or(id);
            match events::apply(own, webhooks, limiter, cfg, job, &event).await {
                Ok(ack) => ObjectAnswer::Event { ack },
                Err(e) => ObjectAnswer::error(e),
            }
        }
    }
}

/// The jobs' objects, as the edge reaches them.
#[allow(async_fn_in_trait)]
pub trait JobObjects {
    async fn call(&self, id: &JobId, request: &ObjectRequest) -> Result<ObjectAnswer, StoreError>;
}

/// Applies `event` to job `id` in its object.
pub async fn event(
    objects: &impl JobObjects,
    id: &JobId,
    event: &JobEvent,
) -> Result<EventAck, EdgeError> {
    let object = object_of(id);
    let job_id = (object != *id).then(|| id.clone());
    let request = ObjectRequest::Event { event: event.clone(), job_id };
    match objects.call(&object, &request).await? {
        ObjectAnswer::Event { ack } => Ok(ack),
        other => Err(other.into_error()),
    }
}

/// Job state where it lives: a job's and a batch's keys in their object, the rest in KV.
pub struct Routed<K, O> {
    pub kv: K,
    pub objects: O,
}

impl<K: Kv, O: JobObjects> Routed<K, O> {
    async fn keyed(&self, id: &JobId, request: ObjectRequest) -> Result<ObjectAnswer, StoreError> {
        match self.objects.call(id, &request).await? {
            ObjectAnswer::Error { message, .. } => Err(StoreError(message)),
            answer => Ok(answer),
        }
    }
}

impl<K: Kv, O: JobObjects> Kv for Routed<K, O> {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let Some(id) = owner(key) else { return self.kv.get(key).await };
        match self.keyed(&id, ObjectRequest::Get { key: key.to_owned() }).await? {
            ObjectAnswer::Value { value } => Ok(value),
            other => Err(StoreError(format!("the job's object answered {other:?}"))),
        }
    }

    async fn put(&self, key: &str, value: &str, ttl_secs: u64) -> Result<(), StoreError> {
        let Some(id) = owner(key) else { return self.kv.put(key, value, ttl_secs).await };
        let request = ObjectRequest::Put { key: key.to_owned(), value: value.to_owned(), ttl_secs };
        self.keyed(&id, request).await.map(drop)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let Some(id) = owner(key) else { return self.kv.delete(key).await };
        self.keyed(&id, ObjectRequest::Delete { key: key.to_owned() }).await.map(drop)
    }

    /// Each object's entries in one request (in parts of at most [`PUT_MANY_BYTES`]), KV's as
    /// KV takes them.
    async fn put_many(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let mut by_owner: Vec<(Option<JobId>, Vec<Entry>)> = Vec::new();
        for entry in entries {
            let owner = owner(&entry.key);
            match by_owner.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, group)) => group.push(entry.clone()),
                None => by_owner.push((owner, vec![entry.clone()])),
            }
        }
        for (owner, group) in by_owner {
            let Some(id) = owner else {
                self.kv.put_many(&group).await?;
                continue;
            };
            for part in put_parts(group, PUT_MANY_BYTES) {
                self.keyed(&id, ObjectRequest::PutMany { entries: part }).await?;
            }
        }
        Ok(())
    }

    /// Lists KV only: nothing lists a job's keys (dead letters are listed, and live in KV).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.kv.list(prefix).await
    }

    /// Keys of one object: one request to it. Keys of none: KV's. Mixed: each where it lives.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let owners: Vec<Option<JobId>> = keys.iter().map(|k| owner(k)).collect();
        match owners.first() {
            Some(Some(id)) if owners.iter().all(|o| o.as_ref() == Some(id)) => {
                let request = ObjectRequest::GetMany { keys: keys.to_vec() };
                match self.keyed(id, request).await? {
                    ObjectAnswer::Values { values } if values.len() == keys.len() => Ok(values),
                    other => Err(StoreError(format!("the job's object answered {other:?}"))),
                }
            }
            _ if owners.iter().all(Option::is_none) => self.kv.get_many(keys).await,
            _ => futures::future::try_join_all(keys.iter().map(|key| self.get(key))).await,
        }
    }
}

/// Where a job's events are applied: the renderer's, and the ends decided at the edge (the
/// push consumer's last attempt, a dead letter).
#[allow(async_fn_in_trait)]
pub trait Ends {
    async fn end(
        &self,
        cfg: &EdgeConfig,
        id: &JobId,
        event: &JobEvent,
    ) -> Result<EventAck, EdgeError>;
}

/// Job state in one [`Kv`] (the native tests'): applied there.
impl<K: Kv, Q: Queue<WebhookMessage>, L: Limiter> Ends for (&K, &Q, &L) {
    async fn end(
        &self,
        cfg: &EdgeConfig,
        id: &JobId,
        event: &JobEvent,
    ) -> Result<EventAck, EdgeError> {
        let (jobs, webhooks, limiter) = *self;
        events::apply(jobs, webhooks, limiter, cfg, id, event).await
    }
}

/// The Worker's: a job's end in its object (a document's in its batch's).
pub struct ObjectEnds<'a, O>(pub &'a O);

impl<O: JobObjects> Ends for ObjectEnds<'_, O> {
    async fn end(
        &self,
        cfg: &EdgeConfig,
        id: &JobId,
        event: &JobEvent,
    ) -> Result<EventAck, EdgeError> {
        let _ = cfg; // the object has its own
        self::event(self.0, id, event).await
    }
}

/// `POST /internal/jobs/{id}/events`: applied in the job's object.
pub async fn apply_event(
    objects: &impl JobObjects,
    cfg: &EdgeConfig,
    id: &str,
    body: &[u8],
) -> Result<EventAck, EdgeError> {
    let (id, event) = events::parse_event(id, body)?;
    ObjectEnds(objects).end(cfg, &id, &event).await
}

#[cfg(test)]
pub(crate) mod memory {
    //! The jobs' objects for the native tests: each a [`MemoryKv`] of its own. The futures
    //! here never wait on each other, so an object's request runs to its end before the next,
    //! as in a Durable Object.
    use std::{cell::RefCell, collections::HashMap, rc::Rc};

    use super::*;
    use crate::{
        jobs::tests::cfg,
        limits::tests::MemoryLimiter,
        store::memory::{MemoryKv, MemoryQueue},
    };

    #[derive(Default)]
    pub(crate) struct MemoryObjects {
        pub(crate) storage: RefCell<HashMap<JobId, Rc<MemoryKv>>>,
        pub(crate) webhooks: MemoryQueue<WebhookMessage>,
        pub(crate) limiter: MemoryLimiter,
        /// Requests the objects were asked, all together.
        pub(crate) asked: std::cell::Cell<usize>,
    }

    impl JobObjects for &MemoryObjects {
        async fn call(
            &self,
            id: &JobId,
            request: &ObjectRequest,
        ) -> Result<ObjectAnswer, StoreError> {
            self.asked.set(self.asked.get() + 1);
            let own = self.storage.borrow_mut().entry(id.clone()).or_default().clone();
            let stores = (&self.webhooks, &self.limiter);
            Ok(handle(own.as_ref(), stores, &cfg(), id, request.clone()).await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        admission,
        jobs::{
            self,
            tests::{acct, cfg, lim, run, ts},
        },
        store::memory::{MemoryKv, MemoryQueue},
    };

    #[test]
    fn a_single_job_lives_in_its_object() {
        run(async {
            let (kv, objects) = (MemoryKv::default(), memory::MemoryObjects::default());
            let jobs = Routed { kv: &kv, objects: &objects };
            let (queue, limiter) = (MemoryQueue::default(), lim());
            let large = format!("<p>{}</p>", "word ".repeat(20_000));
            let body = serde_json::json!({"content": large, "async": true,
                "upload_url": "https://b.s3.amazonaws.com/a.pdf?X-Amz-Signature=abc"});
            let headers = admission::SubmitHeaders::default();
            let stores = (&jobs, &queue, &limiter);
            let body = body.to_string();
            jobs::submit(stores, &cfg(), &acct("a"), headers, body.as_bytes(), ts(0))
                .await
                .unwrap();
            let id = queue.0.borrow()[0].job_id.clone();
            assert!(kv.entries.borrow().is_empty(), "nothing of it in KV");
            let own = objects.storage.borrow()[&id].clone();
            let mut keys: Vec<String> = own.entries.borrow().keys().cloned().collect();
            keys.sort();
            assert_eq!(keys, [format!("job:{id}"), format!("job:{id}:spec")]);
            // GET /jobs: one request to the object, all the keys it reads at once.
            let before = objects.asked.get();
            let view = jobs::job_status(&jobs, &cfg(), &acct("a"), id.as_str(), ts(1)).await;
            assert_eq!(view.unwrap().status, tailpdf_shared::JobStatus::Pending);
            assert_eq!(objects.asked.get() - before, 1);
            // Its events, through the object; its end deletes the spec there.
            for event in [
                JobEvent::Processing { at: ts(1) },
                JobEvent::Failed { at: ts(2), error_message: "x".into() },
            ] {
                let body = serde_json::to_vec(&event).unwrap();
                let c = cfg();
                let ack = apply_event(&jobs.objects, &c, id.as_str(), &body).await;
                assert!(ack.unwrap().applied);
            }
            assert!(own.get(&format!("job:{id}:spec")).await.unwrap().is_none());
            assert!(kv.entries.borrow().is_empty(), "still nothing in KV");
            assert_eq!(objects.webhooks.0.borrow().len(), 0, "no webhook URL, no webhook");
            // Dead letters are KV's.
            jobs.put("dead:msg_x", "{}", 60).await.unwrap();
            assert!(kv.entries.borrow().contains_key("dead:msg_x"));
        });
    }

    #[test]
    fn a_batch_is_written_to_its_object_in_one_request_and_its_documents_live_there() {
        run(async {
            let (kv, objects) = (MemoryKv::default(), memory::MemoryObjects::default());
            let jobs = Routed { kv: &kv, objects: &objects };
            let queue = MemoryQueue::default();
            // 20 documents, half with specs too large for their messages (in packs).
            let large = format!("<p>{}</p>", "word ".repeat(15_000));
            let documents: Vec<_> = (0..20)
                .map(|i| {
                    let content = if i % 2 == 0 { large.as_str() } else { "<p>x</p>" };
                    serde_json::json!({"content": content,
                        "upload_url": "https://b.s3.amazonaws.com/a.pdf?X-Amz-Signature=abc"})
                })
                .collect();
            let body = serde_json::json!({ "documents": documents }).to_string();
            let stores = (&jobs, &queue, &objects.limiter);
            let headers = admission::SubmitHeaders::default();
            let submitted = crate::batches::submit_batch(
                stores,
                &cfg(),
                &acct("a"),
                headers,
                body.as_bytes(),
                ts(0),
            )
            .await
            .unwrap();
            assert_eq!(objects.asked.get(), 1, "the record and 3 packs: one request");
            assert!(kv.entries.borrow().is_empty(), "nothing of it in KV");
            let crate::batches::BatchSubmission::Accepted(batch) = submitted.submission else {
                unreachable!()
            };
            let own = objects.storage.borrow()[&batch.batch_id].clone();
            assert_eq!(own.entries.borrow().len(), 4);
            // A document's spec, its event and its state: all in the batch's object.
            let document = &batch.jobs[0].job_id;
            let before = objects.asked.get();
            let spec = jobs::job_spec(&jobs, document.as_str()).await.unwrap();
            assert!(spec.content.contains("word"));
            assert_eq!(objects.asked.get() - before, 1, "its spec and its pack: one read");
            let body = serde_json::to_vec(&JobEvent::Processing { at: ts(1) }).unwrap();
            let ack = apply_event(&jobs.objects, &cfg(), document.as_str(), &body).await;
            assert!(ack.unwrap().applied);
            assert!(own.entries.borrow().contains_key(&format!("job:{document}:processing")));
            let view = jobs::job_status(&jobs, &cfg(), &acct("a"), document.as_str(), ts(2)).await;
            assert_eq!(view.unwrap().status, tailpdf_shared::JobStatus::Processing);
            assert_eq!(objects.storage.borrow().len(), 1, "one object for the whole batch");
            assert!(kv.entries.borrow().is_empty(), "still nothing in KV");
        });
    }

    #[test]
    fn many_writes_go_in_requests_of_bounded_size() {
        let entry = |n: usize| Entry { key: format!("k{n}"), value: "v".repeat(n), ttl_secs: 60 };
        assert!(put_parts(Vec::new(), 10).is_empty());
        let groups = put_parts(vec![entry(3), entry(4), entry(20), entry(1)], 11);
        let sizes: Vec<Vec<usize>> =
            groups.iter().map(|g| g.iter().map(|e| e.value.len()).collect()).collect();
        // "k3"+3 and "k4"+4 fill 11 bytes; 20 is alone (larger than a part), and 1 after it.
        assert_eq!(sizes, [vec![3, 4], vec![20], vec![1]]);
    }

    #[test]
    fn large_values_are_cut_at_character_boundaries() {
        assert_eq!(parts("", 4), [""]);
        assert_eq!(parts("abcd", 4), ["abcd"]);
        assert_eq!(parts("abcdefghi", 4), ["abcd", "efgh", "i"]);
        // "é" is two bytes: never cut in half.
        assert_eq!(parts("aéé", 2), ["a", "é", "é"]);
        let big = "\"é".repeat(PART_BYTES);
        let cut = parts(&big, PART_BYTES);
        assert!(cut.iter().all(|p| p.len() <= PART_BYTES) && (3..=4).contains(&cut.len()));
        assert_eq!(cut.concat(), big);
    }

    #[test]
    fn a_single_job_s_keys_are_its_object_s_and_a_document_s_its_batch_s() {
        let single = JobId::from_parts(1_764_230_000_000, 7);
        assert_eq!(owner(&format!("job:{single}")), Some(single.clone()));
        assert_eq!(owner(&format!("job:{single}:spec")), Some(single.clone()));
        assert_eq!(owner(&format!("job:{single}:webhook_queued:completed")), Some(single));
        let batch = JobId::from_parts(1_764_230_000_000, 8);
        let document = tailpdf_shared::batch::document_job_id(&batch, 3).unwrap();
        assert_eq!(owner(&format!("job:{document}:end")), Some(batch.clone()));
        assert_eq!(owner(&format!("job:{document}:spec")), Some(batch.clone()));
        assert_eq!(owner(&format!("batch:{batch}")), Some(batch.clone()));
        assert_eq!(owner(&format!("batch:{batch}:specs:3")), Some(batch.clone()));
        assert_eq!(owner(&format!("batch:{batch}:webhook_queued")), Some(batch));
        assert_eq!(owner("dead:msg_x"), None);
        assert_eq!(owner("job:not-an-id"), None);
    }
}
