//! A stand-in of Cloudflare Queues' HTTP pull consumer API, the one part of pull mode that
//! cannot run here. It follows the documented wire format: `POST
//! /accounts/{account}/queues/{queue}/messages/pull` leases up to `batch_size` (at most 100)
//! messages for `visibility_timeout_ms` (at most 12 h), with base64 JSON bodies and each
//! message's `attempts`; a lease that expires makes its message visible again, with one more
//! attempt; `.../messages/ack` removes the `acks` and makes the `retries` visible after their
//! `delay_seconds`. Calls without the API token's bearer get the API's 401 envelope.
//!
//! Messages get in either by [`PullQueue::send`] or by `POST /jobs/take`, the request the
//! edge's push consumer makes (its internal signature checked): Miniflare cannot hand a queue to an
//! HTTP pull consumer, so the stack in pull mode points the edge's `RENDERER_URL` here, and
//! what the Worker sends to `render-jobs` lands in this queue as it would on Cloudflare.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use serde_json::{json, Value};
use tailpdf_shared::{
    messages::{
        GroupAnswer, GroupJobEnd, GroupRequest, RenderJobMessage, TakeAnswer, TakeRequest,
        TAKE_PATH,
    },
    signing::{verify_internal, INTERNAL_SIGNATURE_HEADER},
};

use crate::{now, servers::Served};

pub const ACCOUNT_ID: &str = "acct1";
pub const QUEUE_ID: &str = "q1";
pub const API_TOKEN: &str = "cf-token";
/// The API's limits on one pull.
const MAX_BATCH: u64 = 100;
const MAX_VISIBILITY_MS: u64 = 12 * 3600 * 1000;

struct Message {
    id: String,
    body: Vec<u8>,
    attempts: u32,
    lease: Option<(String, Instant)>,
    visible_at: Instant,
    /// When it was sent, in Unix milliseconds.
    sent_ms: u64,
}

impl Message {
    /// Held by a consumer whose lease has not expired at `now`.
    fn leased(&self, now: Instant) -> bool {
        self.lease.as_ref().is_some_and(|(_, until)| *until > now)
    }

    fn holds(&self, lease: &str) -> bool {
        self.lease.as_ref().is_some_and(|(l, _)| l == lease)
    }
}

#[derive(Default)]
struct Inner {
    messages: VecDeque<Message>,
    sent: u64,
    acked: Vec<String>,
    retried: Vec<(String, u64)>,
    deliveries: Vec<(String, u32)>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    /// The edge's internal secret, to check what `POST /jobs/take` receives.
    internal_secret: Option<String>,
}

/// The queue, served on loopback. `api_base` is the renderer's `--cf-api-base`.
pub struct PullQueue {
    pub api_base: String,
    /// Where the edge's push consumer delivers (its `RENDERER_URL`).
    pub ingest: String,
    shared: Shared,
    _server: Served,
}

impl PullQueue {
    /// `internal_secret`: when given, `POST /jobs/take` takes only requests the edge signed with it.
    pub async fn start(internal_secret: Option<&str>) -> Self {
        let shared =
            Shared { inner: Arc::default(), internal_secret: internal_secret.map(str::to_owned) };
        let state = shared.clone();
        let server = Served::start(|_| {
            Router::new()
                .route(
                    "/client/v4/accounts/{account}/queues/{queue}/messages/{action}",
                    post(messages),
                )
                .route(TAKE_PATH, post(ingest))
                .route("/jobs/group", post(ingest_group))
                .with_state(state)
        })
        .await;
        Self {
            api_base: format!("{}/client/v4", server.base),
            ingest: server.base.clone(),
            shared,
            _server: server,
        }
    }

    /// Sends a job as the Worker's producer would; returns the message's id.
    pub fn send(&self, job: &RenderJobMessage) -> String {
        self.shared.push(serde_json::to_vec(job).unwrap())
    }

    /// Leases up to `batch` messages as a consumer that then dies: they come back once
    /// `visibility` is over. Returns how many were leased.
    pub fn lease_and_vanish(&self, batch: usize, visibility: Duration) -> usize {
        self.shared.lease(batch, visibility, "vanished").len()
    }

    /// Ids of the acknowledged messages, in order.
    pub fn acked(&self) -> Vec<String> {
        self.shared.inner.lock().unwrap().acked.clone()
    }

    /// (id, delay_seconds) of every message handed back.
    pub fn retried(&self) -> Vec<(String, u64)> {
        self.shared.inner.lock().unwrap().retried.clone()
    }

    /// (id, attempts) of every lease given.
    pub fn deliveries(&self) -> Vec<(String, u32)> {
        self.shared.inner.lock().unwrap().deliveries.clone()
    }

    /// (id, leased now) of the messages not acknowledged yet.
    pub fn pending(&self) -> Vec<(String, bool)> {
        let now = Instant::now();
        let inner = self.shared.inner.lock().unwrap();
        inner.messages.iter().map(|m| (m.id.clone(), m.leased(now))).collect()
    }
}

impl Shared {
    fn push(&self, body: Vec<u8>) -> String {
        let mut inner = self.inner.lock().unwrap();
        inner.sent += 1;
        let id = format!("msg-{}", inner.sent);
        inner.messages.push_back(Message {
            id: id.clone(),
            body,
            attempts: 0,
            lease: None,
            visible_at: Instant::now(),
            sent_ms: unix_ms(),
        });
        id
    }

    fn lease(&self, batch: usize, visibility: Duration, who: &str) -> Vec<Value> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut guard = self.inner.lock().unwrap();
        let inner = &mut *guard;
        for m in &mut inner.messages {
            if out.len() >= batch {
                break;
            }
            if m.leased(now) || m.visible_at > now {
                continue;
            }
            m.attempts += 1;
            let lease = format!("lease-{}-{}-{who}", m.id, m.attempts);
            m.lease = Some((lease.clone(), now + visibility));
            inner.deliveries.push((m.id.clone(), m.attempts));
            out.push(json!({
                "id": m.id, "body": BASE64.encode(&m.body), "timestamp_ms": m.sent_ms,
                "attempts": m.attempts, "lease_id": lease,
                "metadata": {"CF-sourceMessageSource": "worker", "CF-Content-Type": "json"}
            }));
        }
        out
    }
}

impl Inner {
    /// The queue's backlog as the API's answers carry it since 2026-04-28:
    /// `result.metadata.metrics`, every message not yet acknowledged, leased ones included.
    fn metrics(&self) -> Value {
        let bytes: usize = self.messages.iter().map(|m| m.body.len()).sum();
        let oldest = self.messages.iter().map(|m| m.sent_ms).min().unwrap_or(0);
        json!({"metrics": {"backlog_count": self.messages.len(), "backlog_bytes": bytes,
            "oldest_message_timestamp_ms": oldest}})
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

fn envelope(status: StatusCode, result: Value, errors: Value) -> Response {
    let success = status.is_success();
    (status, Json(json!({"success": success, "errors": errors, "messages": [], "result": result})))
        .into_response()
}

fn refused(status: StatusCode, code: u32, message: &str) -> Response {
    envelope(status, Value::Null, json!([{"code": code, "message": message}]))
}

/// The API's own refusal of a call without the token, or to another account or queue.
fn refusal(headers: &HeaderMap, account: &str, queue: &str) -> Option<Response> {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok());
    if bearer != Some(&format!("Bearer {API_TOKEN}")) {
        return Some(refused(StatusCode::UNAUTHORIZED, 10000, "Authentication error"));
    }
    if account != ACCOUNT_ID || queue != QUEUE_ID {
        return Some(refused(StatusCode::NOT_FOUND, 11000, "Queue not found"));
    }
    None
}

/// `.../messages/pull` and `.../messages/ack`, once the call is authorized.
async fn messages(
    State(q): State<Shared>,
    headers: HeaderMap,
    Path((account, queue, action)): Path<(String, String, String)>,
    Json(body): Json<Value>,
) -> Response {
    if let Some(refusal) = refusal(&headers, &account, &queue) {
        return refusal;
    }
    match action.as_str() {
        "pull" => pull(&q, &body),
        "ack" => ack(&q, &body),
        _ => refused(StatusCode::NOT_FOUND, 7003, "No route for that URI"),
    }
}

fn pull(q: &Shared, body: &Value) -> Response {
    let batch = body["batch_size"].as_u64().unwrap_or(10);
    let visibility = body["visibility_timeout_ms"].as_u64().unwrap_or(30_000);
    if batch == 0 || batch > MAX_BATCH || visibility > MAX_VISIBILITY_MS {
        return refused(StatusCode::BAD_REQUEST, 10001, "batch_size or visibility out of range");
    }
    let messages =
        q.lease(usize::try_from(batch).unwrap(), Duration::from_millis(visibility), "renderer");
    let inner = q.inner.lock().unwrap();
    let result = json!({"message_backlog_count": inner.messages.len(), "messages": messages,
        "metadata": inner.metrics()});
    envelope(StatusCode::OK, result, json!([]))
}

fn ack(q: &Shared, body: &Value) -> Response {
    let mut guard = q.inner.lock().unwrap();
    let inner = &mut *guard;
    let (mut acks, mut retries) = (0, 0);
    for a in body["acks"].as_array().into_iter().flatten() {
        let lease = a["lease_id"].as_str().unwrap_or_default();
        if let Some(i) = inner.messages.iter().position(|m| m.holds(lease)) {
            let m = inner.messages.remove(i).unwrap();
            inner.acked.push(m.id);
            acks += 1;
        }
    }
    for r in body["retries"].as_array().into_iter().flatten() {
        let lease = r["lease_id"].as_str().unwrap_or_default();
        let delay = r["delay_seconds"].as_u64().unwrap_or(0);
        if let Some(m) = inner.messages.iter_mut().find(|m| m.holds(lease)) {
            m.lease = None;
            m.visible_at = Instant::now() + Duration::from_secs(delay);
            inner.retried.push((m.id.clone(), delay));
            retries += 1;
        }
    }
    let result = json!({"ackCount": acks, "retryCount": retries, "warnings": [],
        "metadata": inner.metrics()});
    envelope(StatusCode::OK, result, json!([]))
}

/// The edge's push delivery of a `render-batches` group: each job queued here (the stand-in
/// is one queue for both), every one answered as ended here.
async fn ingest_group(State(q): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(secret) = &q.internal_secret {
        let signature = headers.get(INTERNAL_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        if verify_internal(secret, signature, "POST", "/jobs/group", &body, now()).is_err() {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let Ok(group) = serde_json::from_slice::<GroupRequest>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut ended = Vec::new();
    for job in group.jobs {
        q.push(serde_json::to_vec(&job).unwrap_or_default());
        ended.push(GroupJobEnd::Ended { job_id: job.job_id });
    }
    Json(GroupAnswer { jobs: ended }).into_response()
}

/// The edge's push delivery of a `render-jobs` message: its job queued here, answered
/// `ended` at once (from here on it is the pull consumer's, as on Cloudflare).
async fn ingest(State(q): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(secret) = &q.internal_secret {
        let signature = headers.get(INTERNAL_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        if verify_internal(secret, signature, "POST", TAKE_PATH, &body, now()).is_err() {
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let Ok(TakeRequest { job, .. }) = serde_json::from_slice::<TakeRequest>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    q.push(serde_json::to_vec(&job).unwrap_or_default());
    Json(TakeAnswer::Ended).into_response()
}
