//! The Worker's bindings as the edge's traits: KV as [`Kv`], Queues as [`Queue`], its vars
//! and secrets as [`EdgeConfig`], the accounts' objects as [`ObjectLimiter`], and an
//! [`ApiError`] as a response. Shared by the Worker's entry points (`worker_glue`), the jobs'
//! objects (`job_object_class`) and the renderer instances' (`container_class`).

use serde::Serialize;
use tailpdf_shared::ApiError;
use worker::{BatchMessageBuilder, Env, KvStore, MessageBuilder, QueueContentType, Response};

use crate::{
    config::EdgeConfig,
    limiter_object::ObjectLimiter,
    store::{Kv, Queue, StoreError},
};

pub(crate) struct WorkerKv(KvStore);

impl Kv for WorkerKv {
    async fn get(&self, key: &str) -> std::result::Result<Option<String>, StoreError> {
        self.0.get(key).text().await.map_err(|e| StoreError(e.to_string()))
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        ttl_secs: u64,
    ) -> std::result::Result<(), StoreError> {
        self.0
            .put(key, value)
            .map_err(|e| StoreError(e.to_string()))?
            .expiration_ttl(ttl_secs)
            .execute()
            .await
            .map_err(|e| StoreError(e.to_string()))
    }

    async fn delete(&self, key: &str) -> std::result::Result<(), StoreError> {
        self.0.delete(key).await.map_err(|e| StoreError(e.to_string()))
    }

    async fn list(&self, prefix: &str) -> std::result::Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let mut page = self.0.list().prefix(prefix.to_owned());
            if let Some(c) = cursor.take() {
                page = page.cursor(c);
            }
            let page = page.execute().await.map_err(|e| StoreError(e.to_string()))?;
            keys.extend(page.keys.into_iter().map(|k| k.name));
            match page.cursor {
                Some(c) if !page.list_complete => cursor = Some(c),
                _ => return Ok(keys),
            }
        }
    }
}

pub(crate) struct WorkerQueue(worker::Queue);

impl WorkerQueue {
    /// Messages travel as JSON text, not as JS values: a job's `config` may hold integers a
    /// JavaScript number cannot represent, and text carries them exactly (to a pull consumer
    /// too, which gets text bodies as they are).
    async fn send_text<M: Serialize>(
        &self,
        message: &M,
        delay_secs: Option<u32>,
    ) -> std::result::Result<(), StoreError> {
        let text = serde_json::to_string(message).map_err(|e| StoreError(e.to_string()))?;
        let mut builder = MessageBuilder::new(text).content_type(QueueContentType::Text);
        if let Some(delay) = delay_secs {
            builder = builder.delay_seconds(delay);
        }
        self.0.send(builder.build()).await.map_err(|e| StoreError(e.to_string()))
    }
}

impl<M: Serialize> Queue<M> for WorkerQueue {
    async fn send(&self, message: &M) -> std::result::Result<(), StoreError> {
        self.send_text(message, None).await
    }

    async fn send_many(&self, messages: &[M]) -> std::result::Result<(), StoreError> {
        let texts = messages
            .iter()
            .map(|m| serde_json::to_string(m).map_err(|e| StoreError(e.to_string())))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let batch = BatchMessageBuilder::new()
            .messages(
                texts
                    .into_iter()
                    .map(|t| MessageBuilder::new(t).content_type(QueueContentType::Text).build()),
            )
            .build();
        self.0.send_batch(batch).await.map_err(|e| StoreError(e.to_string()))
    }

    async fn send_after(
        &self,
        message: &M,
        delay_secs: u32,
    ) -> std::result::Result<(), StoreError> {
        self.send_text(message, Some(delay_secs)).await
    }
}

pub(crate) fn config(env: &Env) -> std::result::Result<EdgeConfig, ApiError> {
    EdgeConfig::from_vars(|name| {
        env.secret(name)
            .ok()
            .map(|s| s.to_string())
            .or_else(|| env.var(name).ok().map(|v| v.to_string()))
    })
    .map_err(|e| {
        worker::console_error!("configuration: {e}");
        ApiError::unavailable("The service is not configured; retry later.", 60)
    })
}

pub(crate) fn kv(env: &Env, binding: &str) -> std::result::Result<WorkerKv, ApiError> {
    env.kv(binding).map(WorkerKv).map_err(|e| {
        worker::console_error!("KV binding {binding}: {e}");
        ApiError::unavailable("Job storage is unavailable; retry shortly.", 5)
    })
}

pub(crate) fn limiter(env: &Env) -> std::result::Result<ObjectLimiter, ApiError> {
    env.durable_object("LIMITS").map(ObjectLimiter).map_err(|e| {
        worker::console_error!("Durable Object binding LIMITS: {e}");
        ApiError::unavailable("The service is not configured; retry later.", 60)
    })
}

pub(crate) fn queue(env: &Env, binding: &str) -> std::result::Result<WorkerQueue, ApiError> {
    env.queue(binding).map(WorkerQueue).map_err(|e| {
        worker::console_error!("queue binding {binding}: {e}");
        ApiError::unavailable("The job queue is unavailable; retry shortly.", 5)
    })
}

/// The one place an error becomes a response: the API's error body, its status, and its
/// `Retry-After` and `Allow` when it has them.
pub(crate) fn error_response(e: &ApiError) -> worker::Result<Response> {
    let mut response = Response::from_json(&e.body())?.with_status(e.status());
    if let Some(secs) = e.retry_after_secs {
        response.headers_mut().set("Retry-After", &secs.to_string())?;
    }
    if let Some(allow) = e.allow {
        response.headers_mut().set("Allow", allow)?;
    }
    Ok(response)
}
