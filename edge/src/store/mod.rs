//! Where the edge keeps things, behind two small traits so that the logic runs natively in
//! tests: [`Kv`] (Workers KV) and [`Queue`] (Cloudflare Queues).
//!
//! KV allows one write per second to a key and is eventually consistent, so a job is kept as
//! write-once keys per stage, read together. A single job's keys are kept by its own Durable
//! Object, a batch's and its documents' by the batch's ([`crate::job_object`]: the same keys,
//! behind the same [`Kv`]); dead letters are Workers KV's:
//!
//! | key | value | written |
//! |---|---|---|
//! | `job:{id}` | [`JobBase`] | at submit (24 h TTL), not for a batch's document (its `batch:{id}` holds it); when the job ends, with the 1 h TTL |
//! | `job:{id}:spec` | the render spec, only when too large for the queue message (a batch's document: and its `content` over 256 KiB) | at submit (24 h); deleted when the job ends |
//! | `job:{id}:processing`, `job:{id}:uploading` | the event | once each |
//! | `job:{id}:end` | the terminal event | once, 1 h TTL |
//! | `job:{id}:webhook` | delivery status | after each delivery attempt (minutes apart) |
//! | `job:{id}:webhook_queued:{event}` | `true` | once, when that end's webhook was queued, 1 h TTL |
//! | `batch:{id}` | [`BatchRecord`]: account, webhook, each document's webhook and where its spec is | once, at submit, 24 h |
//! | `batch:{id}:specs:{n}` | [`SpecPack`]: the specs of documents `8n..8n+8` too large for their messages | once, at submit, 24 h; deleted when the last of them ends |
//! | `batch:{id}:webhook_queued` | `true` | once, when `batch.completed` was queued, 1 h TTL |
//! | `dead:{webhook-id}` | a dead-lettered delivery ([`crate::dead_letters`]) | once, 7 days; deleted when replayed |
//!
//! A batch's document's job id is its batch's id and its index
//! ([`tailpdf_shared::batch::document_job_id`]): until `job:{id}` is written, [`load_job`]
//! builds its [`JobBase`] from `batch:{id}`.
//!
//! `Idempotency-Key`s are not here: each account's object keeps its own, exactly
//! ([`crate::idempotency`]). API keys live in their own namespace, `API_KEYS`: `key:{sha256(key)}` → [`Account`], and
//! `account:{name}` its secret and limits. Every key's name is made in `store/keys.rs`.

mod keys;
mod records;

pub use keys::*;
pub use records::*;

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use tailpdf_shared::{
    batch::parse_document_job_id, job::WebhookDelivery, limits::KV_MIN_TTL_SECS, JobEvent, JobId,
    JobRecord, JobStatus,
};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

/// Workers KV, as the edge uses it.
#[allow(async_fn_in_trait)] // the Worker is single-threaded: no Send bound wanted
pub trait Kv {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    async fn put(&self, key: &str, value: &str, ttl_secs: u64) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// The keys that start with `prefix`, all of them.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError>;
    /// Writes each entry: all at once (a store that can, in one request).
    async fn put_many(&self, entries: &[Entry]) -> Result<(), StoreError> {
        let puts = entries.iter().map(|e| self.put(&e.key, &e.value, e.ttl_secs));
        futures::future::try_join_all(puts).await.map(drop)
    }
    /// Each key's value, in order: all read at once (a store that can, in one request).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        futures::future::try_join_all(keys.iter().map(|key| self.get(key))).await
    }
}

/// A borrowed store is the store.
impl<T: Kv> Kv for &T {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        (**self).get(key).await
    }
    async fn put(&self, key: &str, value: &str, ttl_secs: u64) -> Result<(), StoreError> {
        (**self).put(key, value, ttl_secs).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        (**self).list(prefix).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        (**self).get_many(keys).await
    }
    async fn put_many(&self, entries: &[Entry]) -> Result<(), StoreError> {
        (**self).put_many(entries).await
    }
}

/// The most bytes of values one [`Kv::put_many`] request to a Durable Object carries: a 64 MiB batch's specs go
/// in a few requests, none of which holds the object's memory (128 MB) for long.
pub const PUT_MANY_BYTES: usize = 8 * 1024 * 1024;

/// `entries` in groups of at most `max` bytes of values (an entry larger alone is a group).
pub fn put_parts(entries: Vec<Entry>, max: usize) -> Vec<Vec<Entry>> {
    let mut groups: Vec<Vec<Entry>> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        let size = entry.key.len() + entry.value.len();
        match groups.last_mut() {
            Some(group) if bytes + size <= max => group.push(entry),
            _ => {
                bytes = 0;
                groups.push(vec![entry]);
            }
        }
        bytes += size;
    }
    groups
}

/// One write of [`Kv::put_many`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub ttl_secs: u64,
}

impl Entry {
    /// `value` as JSON at `key`, with a TTL KV takes (as [`put_json`]).
    pub fn json<T: Serialize>(key: String, value: &T, ttl: u64) -> Result<Self, StoreError> {
        let value = serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))?;
        Ok(Self { key, value, ttl_secs: ttl.max(KV_MIN_TTL_SECS) })
    }
}

/// A Cloudflare queue producer.
#[allow(async_fn_in_trait)]
pub trait Queue<M> {
    async fn send(&self, message: &M) -> Result<(), StoreError>;
    /// Sends `messages` in one call (Queues' `sendBatch`): all or none. The caller keeps to
    /// [`SEND_MANY_MAX_MESSAGES`] and [`SEND_MANY_MAX_BYTES`].
    async fn send_many(&self, messages: &[M]) -> Result<(), StoreError>;
    /// Sends `message`, to be delivered no sooner than `delay_secs` from now.
    async fn send_after(&self, message: &M, delay_secs: u32) -> Result<(), StoreError>;
}

/// Queues' `sendBatch` takes at most this many messages at once...
pub const SEND_MANY_MAX_MESSAGES: usize = 100;
/// ...and at most this many bytes of them in all (256 KB).
pub const SEND_MANY_MAX_BYTES: usize = 256 * 1000;

/// `text` of `key` as JSON; `None` stays `None`.
pub fn decode<T: DeserializeOwned>(key: &str, text: Option<&str>) -> Result<Option<T>, StoreError> {
    text.map(|t| serde_json::from_str(t).map_err(|e| StoreError(format!("{key}: {e}")))).transpose()
}

pub async fn get_json<T: DeserializeOwned>(
    kv: &impl Kv,
    key: &str,
) -> Result<Option<T>, StoreError> {
    decode(key, kv.get(key).await?.as_deref())
}

pub async fn put_json<T: Serialize>(
    kv: &impl Kv,
    key: &str,
    value: &T,
    ttl: u64,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(value).map_err(|e| StoreError(e.to_string()))?;
    // KV refuses shorter TTLs; a shorter ended-job TTL is enforced on read (jobs::job_status).
    kv.put(key, &text, ttl.max(KV_MIN_TTL_SECS)).await
}

/// Reads the keys of a job; `None` when the job is unknown or expired. A batch's document
/// without `job:{id}` (not ended yet) has its base from its batch's record.
pub async fn load_job(
    kv: &impl Kv,
    id: &JobId,
    webhook: WebhookRecord,
) -> Result<Option<StoredJob>, StoreError> {
    // The reads go out at once (in one request to a job's object): each is a round trip, and
    // every event of a job and every GET /jobs loads the job.
    let document = parse_document_job_id(id);
    let mut keys = vec![job_key(id)];
    keys.extend(
        [JobStatus::Processing, JobStatus::Uploading, JobStatus::Completed]
            .map(|status| stage_key(id, status)),
    );
    if webhook == WebhookRecord::Read {
        keys.push(webhook_key(id));
    }
    if let Some((batch_id, _)) = &document {
        keys.push(batch_key(batch_id));
    }
    let values = kv.get_many(&keys).await?;
    let read = |key: &str| values[keys.iter().position(|k| k == key).unwrap_or(0)].as_deref();
    let base = decode::<JobBase>(&keys[0], read(&keys[0]));
    let events: Vec<_> = keys[1..4].iter().map(|k| decode::<JobEvent>(k, read(k))).collect();
    let webhook = match webhook {
        WebhookRecord::Read => decode::<WebhookDelivery>(&webhook_key(id), read(&webhook_key(id))),
        WebhookRecord::Skip => Ok(None),
    };
    let batch = match &document {
        Some((batch_id, _)) => {
            let key = batch_key(batch_id);
            decode::<BatchRecord>(&key, read(&key))
        }
        None => Ok(None),
    };
    let base = match (base?, document) {
        (Some(base), _) => base,
        (None, Some((_, index))) => match batch?.and_then(|record| record.job_base(index)) {
            Some(base) => base,
            None => return Ok(None),
        },
        (None, None) => return Ok(None),
    };
    let mut record = JobRecord::new(base.job_id.clone(), base.account.clone(), base.created_at);
    for event in events {
        if let Some(event) = event? {
            record.apply(&event);
        }
    }
    record.webhook = webhook?;
    Ok(Some(StoredJob { base, record }))
}

#[cfg(test)]
pub(crate) mod memory {
    //! In-memory stand-ins of KV and Queues for the native tests.
    use std::{cell::RefCell, collections::HashMap};

    use super::*;

    #[derive(Default)]
    pub(crate) struct MemoryKv {
        pub(crate) entries: RefCell<HashMap<String, (String, u64)>>,
        pub(crate) writes: RefCell<Vec<String>>,
        pub(crate) deletes: RefCell<Vec<String>>,
        /// Every operation (get, put, delete, list), as Cloudflare counts them against an
        /// invocation's 1,000.
        pub(crate) ops: std::cell::Cell<usize>,
    }

    impl Kv for MemoryKv {
        async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
            self.ops.set(self.ops.get() + 1);
            Ok(self.entries.borrow().get(key).map(|(v, _)| v.clone()))
        }
        async fn put(&self, key: &str, value: &str, ttl: u64) -> Result<(), StoreError> {
            assert!(ttl >= 60, "KV refuses a TTL under 60 s ({key}: {ttl})");
            assert!(value.len() <= 25 * 1024 * 1024, "KV refuses values over 25 MiB ({key})");
            self.ops.set(self.ops.get() + 1);
            self.writes.borrow_mut().push(key.to_owned());
            self.entries.borrow_mut().insert(key.to_owned(), (value.to_owned(), ttl));
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.ops.set(self.ops.get() + 1);
            self.deletes.borrow_mut().push(key.to_owned());
            self.entries.borrow_mut().remove(key);
            Ok(())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.ops.set(self.ops.get() + 1);
            let mut keys: Vec<String> =
                self.entries.borrow().keys().filter(|k| k.starts_with(prefix)).cloned().collect();
            keys.sort();
            Ok(keys)
        }
    }

    impl MemoryKv {
        pub(crate) fn ttl(&self, key: &str) -> Option<u64> {
            self.entries.borrow().get(key).map(|(_, t)| *t)
        }
        pub(crate) fn remove(&self, key: &str) {
            self.entries.borrow_mut().remove(key);
        }

        /// A copy of what is stored (without the write log).
        pub(crate) fn snapshot(&self) -> Self {
            Self { entries: RefCell::new(self.entries.borrow().clone()), ..Self::default() }
        }
    }

    /// A [`Kv`] that yields once before every operation, so that two calls on one store can
    /// be interleaved at each of them.
    pub(crate) struct Yielding<'a>(pub(crate) &'a MemoryKv);

    struct YieldOnce(bool);

    impl std::future::Future for YieldOnce {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }

    impl Kv for Yielding<'_> {
        async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
            YieldOnce(false).await;
            self.0.get(key).await
        }
        async fn put(&self, key: &str, value: &str, ttl: u64) -> Result<(), StoreError> {
            YieldOnce(false).await;
            self.0.put(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            YieldOnce(false).await;
            self.0.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            YieldOnce(false).await;
            self.0.list(prefix).await
        }
    }

    /// Records the keys read, and the most reads ever in flight at once (each read yields
    /// once before it is done, as a network read would).
    pub(crate) struct Reads<'a> {
        pub(crate) kv: &'a MemoryKv,
        pub(crate) keys: RefCell<Vec<String>>,
        in_flight: std::cell::Cell<usize>,
        pub(crate) most_at_once: std::cell::Cell<usize>,
    }

    impl<'a> Reads<'a> {
        pub(crate) fn of(kv: &'a MemoryKv) -> Self {
            Self {
                kv,
                keys: RefCell::default(),
                in_flight: std::cell::Cell::new(0),
                most_at_once: std::cell::Cell::new(0),
            }
        }
    }

    impl Kv for Reads<'_> {
        async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
            self.keys.borrow_mut().push(key.to_owned());
            self.in_flight.set(self.in_flight.get() + 1);
            self.most_at_once.set(self.most_at_once.get().max(self.in_flight.get()));
            YieldOnce(false).await;
            self.in_flight.set(self.in_flight.get() - 1);
            self.kv.get(key).await
        }
        async fn put(&self, key: &str, value: &str, ttl: u64) -> Result<(), StoreError> {
            self.kv.put(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.kv.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
            self.kv.list(prefix).await
        }
    }

    /// The messages sent, their delays, how many sends are still to fail, and the size of
    /// each `send_many`.
    pub(crate) struct MemoryQueue<M>(
        pub(crate) RefCell<Vec<M>>,
        RefCell<Vec<u32>>,
        std::cell::Cell<u32>,
        pub(crate) RefCell<Vec<usize>>,
    );

    impl<M> Default for MemoryQueue<M> {
        fn default() -> Self {
            Self::failing_first(0)
        }
    }

    impl<M> MemoryQueue<M> {
        /// A queue that refuses every message.
        pub(crate) fn failing() -> Self {
            Self::failing_first(u32::MAX)
        }

        /// A queue that refuses the first `n` messages.
        pub(crate) fn failing_first(n: u32) -> Self {
            Self(
                RefCell::new(Vec::new()),
                RefCell::new(Vec::new()),
                std::cell::Cell::new(n),
                RefCell::new(Vec::new()),
            )
        }

        /// The delay of every message sent, in order.
        pub(crate) fn delays(&self) -> Vec<u32> {
            self.1.borrow().clone()
        }
    }

    impl<M: Clone + Serialize> Queue<M> for MemoryQueue<M> {
        async fn send(&self, message: &M) -> Result<(), StoreError> {
            self.send_after(message, 0).await
        }

        async fn send_many(&self, messages: &[M]) -> Result<(), StoreError> {
            let bytes: usize =
                messages.iter().map(|m| serde_json::to_vec(m).map_or(0, |j| j.len())).sum();
            assert!(messages.len() <= SEND_MANY_MAX_MESSAGES, "{} messages", messages.len());
            assert!(bytes <= SEND_MANY_MAX_BYTES, "{bytes} bytes in one sendBatch");
            if self.2.get() > 0 {
                self.2.set(self.2.get().saturating_sub(1));
                return Err(StoreError(String::from("queue unavailable")));
            }
            self.3.borrow_mut().push(messages.len());
            for m in messages {
                self.0.borrow_mut().push(m.clone());
                self.1.borrow_mut().push(0);
            }
            Ok(())
        }

        async fn send_after(&self, message: &M, delay_secs: u32) -> Result<(), StoreError> {
            if self.2.get() > 0 {
                self.2.set(self.2.get().saturating_sub(1));
                return Err(StoreError(String::from("queue unavailable")));
            }
            self.0.borrow_mut().push(message.clone());
            self.1.borrow_mut().push(delay_secs);
            Ok(())
        }
    }
}
