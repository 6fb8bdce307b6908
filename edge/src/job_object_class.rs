//! The Durable Object that keeps one single job's keys, or one batch's and its documents'
//! (binding `JOB_OBJECTS`, class `JobObject`), and the edge's way to it ([`ObjectJobs`]). What
//! it does is [`crate::job_object::handle`]; this is the glue. Its storage is forgotten a day
//! after the job or batch began ([`KEPT_MS`]), by an alarm.

use std::time::Duration;

use futures::future::{select, Either};
use worker::{
    durable_object, js_sys, DurableObject, Env, Headers, ListOptions, Method, ObjectNamespace,
    Request, RequestInit, Response, Result, State, Storage,
};

use crate::{
    bindings::{config, limiter, queue},
    job_object::{handle, parts, JobObjects, ObjectAnswer, ObjectRequest, KEPT_MS, PART_BYTES},
    store::{Kv, StoreError},
};

/// How long the edge waits for a job's object.
const DEADLINE: Duration = Duration::from_secs(10);
/// The header that names the job (the object's name is its id).
const JOB_HEADER: &str = "x-tailpdf-job";

#[durable_object]
pub struct JobObject {
    state: State,
    env: Env,
}

impl DurableObject for JobObject {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let id = req.headers().get(JOB_HEADER)?.unwrap_or_default();
        let Ok(id) = tailpdf_shared::JobId::parse(&id) else {
            return Response::error("no job", 400);
        };
        let request: ObjectRequest = req.json().await?;
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            storage.set_alarm(Duration::from_millis(KEPT_MS)).await?;
        }
        let answer = match (config(&self.env), queue(&self.env, "WEBHOOKS"), limiter(&self.env)) {
            (Ok(cfg), Ok(webhooks), Ok(limiter)) => {
                let own = StorageKv(storage);
                handle(&own, (&webhooks, &limiter), &cfg, &id, request).await
            }
            (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => ObjectAnswer::Error {
                code: e.code,
                message: e.message,
                retry_after_secs: e.retry_after_secs,
            },
        };
        Response::from_json(&answer)
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::ok("forgotten")
    }
}

/// The object's storage as a [`Kv`] (TTLs are the alarm's business). A value over
/// [`PART_BYTES`] is kept in parts `{key}#{n}`, its key holding [`PARTS`] and their number.
struct StorageKv(Storage);

/// What a key of a value kept in parts holds before the number (no JSON value starts so).
const PARTS: &str = "\u{0}parts:";

fn store_error(e: worker::Error) -> StoreError {
    StoreError(e.to_string())
}

impl StorageKv {
    async fn raw(&self, key: &str) -> std::result::Result<Option<String>, StoreError> {
        self.0.get::<String>(key).await.map_err(store_error)
    }

    /// How many parts `key`'s value is kept in, when it is.
    fn parted(value: Option<&str>) -> Option<usize> {
        value?.strip_prefix(PARTS)?.parse().ok()
    }
}

impl Kv for StorageKv {
    async fn get(&self, key: &str) -> std::result::Result<Option<String>, StoreError> {
        let value = self.raw(key).await?;
        let Some(n) = Self::parted(value.as_deref()) else { return Ok(value) };
        let mut whole = String::new();
        for i in 0..n {
            match self.raw(&format!("{key}#{i}")).await? {
                Some(part) => whole.push_str(&part),
                None => return Ok(None),
            }
        }
        Ok(Some(whole))
    }

    async fn put(&self, key: &str, value: &str, _ttl: u64) -> std::result::Result<(), StoreError> {
        let parts = parts(value, PART_BYTES);
        if parts.len() == 1 {
            return self.0.put(key, value).await.map_err(store_error);
        }
        for (i, part) in parts.iter().enumerate() {
            self.0.put(&format!("{key}#{i}"), *part).await.map_err(store_error)?;
        }
        self.0.put(key, format!("{PARTS}{}", parts.len())).await.map_err(store_error)
    }

    async fn delete(&self, key: &str) -> std::result::Result<(), StoreError> {
        if let Some(n) = Self::parted(self.raw(key).await?.as_deref()) {
            for i in 0..n {
                self.0.delete(&format!("{key}#{i}")).await.map_err(store_error)?;
            }
        }
        self.0.delete(key).await.map(drop).map_err(store_error)
    }

    async fn list(&self, prefix: &str) -> std::result::Result<Vec<String>, StoreError> {
        let map = self
            .0
            .list_with_options(ListOptions::new().prefix(prefix))
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        let keys = js_sys::Array::from(&map.keys());
        Ok(keys.iter().filter_map(|k| k.as_string()).collect())
    }
}

/// The jobs' objects, one per job id.
pub(crate) struct ObjectJobs(pub(crate) ObjectNamespace);

impl JobObjects for ObjectJobs {
    async fn call(
        &self,
        id: &tailpdf_shared::JobId,
        request: &ObjectRequest,
    ) -> std::result::Result<ObjectAnswer, StoreError> {
        let failed = |e: worker::Error| StoreError(format!("the object of job {id}: {e}"));
        let stub = self.0.get_by_name(id.as_str()).map_err(failed)?;
        let body = serde_json::to_string(request).map_err(|e| failed(e.into()))?;
        let headers = Headers::new();
        headers.set(JOB_HEADER, id.as_str()).map_err(failed)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.into()));
        // The host is never resolved: the request goes to the object.
        let req = Request::new_with_init("https://job/", &init).map_err(failed)?;
        let call = async {
            let mut answer = stub.fetch_with_request(req).await?;
            answer.json::<ObjectAnswer>().await
        };
        let deadline = worker::Delay::from(DEADLINE);
        futures::pin_mut!(call, deadline);
        match select(call, deadline).await {
            Either::Left((answer, _)) => answer.map_err(failed),
            Either::Right(_) => {
                Err(StoreError(format!("the object of job {id}: no answer in time")))
            }
        }
    }
}
