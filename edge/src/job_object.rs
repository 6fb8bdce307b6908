//! Each single job's keys live in the job's own Durable Object (binding `JOB_OBJECTS`, class
//! `JobObject`), its one writer: it handles one request at a time and reads back its own
//! writes wherever the call came from, where KV shows another location's write up to a minute
//! late and caches a miss for a minute (docs/JOBS-ACROSS-LOCATIONS.md). So the renderer gets a
//! spec written near the client, its events find the job, two ends racing at two locations
//! give one outcome, and `GET /jobs` anywhere shows every transition at once.
//!
//! - [`ObjectRequest`] is what the edge asks a job's object: a key's value, to keep or drop
//!   one, or to apply an event. Events run inside the object ([`handle`]): the state machine's
//!   read, write and webhook happen with no other request of the job in between.
//! - [`Routed`] is the edge's [`Kv`] for job state: the keys of a single job (`job:{id}`,
//!   `job:{id}:…`) go to its object, everything else (a batch's records, its documents' keys,
//!   dead letters) to Workers KV as before.
//! - [`Ends`] is where a job's events are applied, the renderer's and the ends decided at the
//!   edge (the push consumer's last attempt, a dead letter): in the job's object for a single
//!   job.
//!
//! A batch's documents stay in KV for now (their job ids carry the batch's; the batch's own
//! object is the next step).

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
    store::{Kv, Queue, StoreError, JOB_PREFIX},
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
    /// Moves the job forward (crate::events::apply), in the object.
    Event {
        event: JobEvent,
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

/// The job a key belongs to, when that job is a single one (a batch's documents stay in KV).
pub fn owner(key: &str) -> Option<JobId> {
    let rest = key.strip_prefix(JOB_PREFIX)?;
    let id = JobId::parse(rest.split(':').next()?).ok()?;
    is_single(&id).then_some(id)
}

/// Whether `id` is a single job's (its state in its object), not a batch's document's.
pub fn is_single(id: &JobId) -> bool {
    parse_document_job_id(id).is_none()
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
        ObjectRequest::Delete { key } => done(own.delete(&key).await),
        ObjectRequest::Event { event } => {
            match events::apply(own, webhooks, limiter, cfg, id, &event).await {
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

/// Applies `event` to single job `id` in its object.
pub async fn event(
    objects: &impl JobObjects,
    id: &JobId,
    event: &JobEvent,
) -> Result<EventAck, EdgeError> {
    let request = ObjectRequest::Event { event: event.clone() };
    match objects.call(id, &request).await? {
        ObjectAnswer::Event { ack } => Ok(ack),
        other => Err(other.into_error()),
    }
}

/// Job state where it lives: a single job's keys in its object, the rest in KV.
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

    /// Lists KV only: nothing lists a job's keys (dead letters are listed, and live in KV).
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.kv.list(prefix).await
    }

    /// Keys of one single job: one request to its object. Keys of none: KV's. Mixed: each
    /// where it lives.
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

/// The Worker's: a single job's end in its object, a document's where its batch keeps it.
pub struct ObjectEnds<'a, K, O, Q, L>(pub &'a Routed<K, O>, pub &'a Q, pub &'a L);

impl<K: Kv, O: JobObjects, Q: Queue<WebhookMessage>, L: Limiter> Ends
    for ObjectEnds<'_, K, O, Q, L>
{
    async fn end(
        &self,
        cfg: &EdgeConfig,
        id: &JobId,
        event: &JobEvent,
    ) -> Result<EventAck, EdgeError> {
        let Self(jobs, webhooks, limiter) = *self;
        if is_single(id) {
            return self::event(&jobs.objects, id, event).await;
        }
        events::apply(jobs, webhooks, limiter, cfg, id, event).await
    }
}

/// `POST /internal/jobs/{id}/events`: a single job's event applied in its object, a batch's
/// document's as before.
pub async fn apply_event<K: Kv, O: JobObjects>(
    (jobs, webhooks, limiter): (&Routed<K, O>, &impl Queue<WebhookMessage>, &impl Limiter),
    cfg: &EdgeConfig,
    id: &str,
    body: &[u8],
) -> Result<EventAck, EdgeError> {
    let (id, event) = events::parse_event(id, body)?;
    ObjectEnds(jobs, webhooks, limiter).end(cfg, &id, &event).await
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
    fn a_single_job_lives_in_its_object_and_a_batch_s_documents_in_kv() {
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
            let webhooks = MemoryQueue::default();
            for event in [
                JobEvent::Processing { at: ts(1) },
                JobEvent::Failed { at: ts(2), error_message: "x".into() },
            ] {
                let body = serde_json::to_vec(&event).unwrap();
                let c = cfg();
                let ack = apply_event((&jobs, &webhooks, &limiter), &c, id.as_str(), &body).await;
                assert!(ack.unwrap().applied);
            }
            assert!(own.get(&format!("job:{id}:spec")).await.unwrap().is_none());
            assert!(kv.entries.borrow().is_empty(), "still nothing in KV");
            assert_eq!(objects.webhooks.0.borrow().len(), 0, "no webhook URL, no webhook");
            // A batch's document: its keys are KV's.
            let document = tailpdf_shared::batch::document_job_id(&id, 0).unwrap();
            jobs.put(&format!("job:{document}:spec"), "{}", 60).await.unwrap();
            assert!(kv.entries.borrow().contains_key(&format!("job:{document}:spec")));
        });
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
    fn a_single_job_s_keys_are_its_object_s_and_a_document_s_stay_in_kv() {
        let single = JobId::from_parts(1_764_230_000_000, 7);
        assert_eq!(owner(&format!("job:{single}")), Some(single.clone()));
        assert_eq!(owner(&format!("job:{single}:spec")), Some(single.clone()));
        assert_eq!(owner(&format!("job:{single}:webhook_queued:completed")), Some(single.clone()));
        let document = tailpdf_shared::batch::document_job_id(&single, 3).unwrap();
        assert_eq!(owner(&format!("job:{document}:end")), None);
        assert_eq!(owner(&format!("batch:{single}")), None);
        assert_eq!(owner("dead:msg_x"), None);
        assert_eq!(owner("job:not-an-id"), None);
    }
}
