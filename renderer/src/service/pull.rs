//! Pull mode: the renderer takes jobs from the `render-jobs` queue through Cloudflare Queues'
//! HTTP pull consumer API, as many as it has free places for, and acknowledges a message only
//! once the job's terminal event was accepted by the edge. A job that did not end is handed
//! back with a delay; on shutdown, leases still held are handed back at once.
//!
//! A queue is first in, first out: one account's backlog stands before everyone else's. So a
//! pulled job whose account already holds its share of places is parked (leased, waiting for
//! a place of its account's), and pulling goes on past it while fewer jobs are parked than
//! there are places: another account's job behind a backlog that deep still gets in, and the
//! scheduler gives it a tab in turn.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tailpdf_shared::{messages::RenderJobMessage, JobId};
use tokio::sync::watch;
use url::Url;

use super::{admission::Purpose, error::ServiceError, runner::JobEnd, AppState};

#[derive(Clone)]
pub struct PullSettings {
    pub api_base: Url,
    pub account_id: String,
    pub queue_id: String,
    pub api_token: String,
    pub interval: Duration,
    /// Jobs leased beyond the places, waiting for a place of their account's.
    pub parking: usize,
    pub visibility_timeout: Duration,
}

/// What bounds the time one job holds its message here.
#[derive(Debug, Clone, Copy)]
pub struct JobBounds {
    pub render_timeout: Duration,
    pub tabs: usize,
    /// Jobs that may be ahead of one, waiting for a tab: those admitted and those parked.
    pub ahead: usize,
    pub upload_timeout: Duration,
    pub upload_retry_budget: Duration,
    pub event_retry_budget: Duration,
    /// One call to the edge (the spec; each try of an event).
    pub edge_call_timeout: Duration,
}

/// The Queues pull API's longest visibility timeout.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

impl JobBounds {
    /// The longest one job can take here, from pull to ack: a wait for a place and a tab
    /// behind the jobs admitted and parked before it, the spec, three events (each retried
    /// within its budget, plus the try under way), the render, and the upload with its
    /// retries; then a margin. A lease this long never expires under a live job, so no other
    /// renderer takes it meanwhile.
    pub fn worst_case(&self) -> Duration {
        let waves = u32::try_from(self.ahead.div_ceil(self.tabs.max(1))).unwrap_or(u32::MAX);
        let tab_wait = self.render_timeout.saturating_mul(waves);
        let events = (self.event_retry_budget + self.edge_call_timeout).saturating_mul(3);
        let total = tab_wait
            + self.edge_call_timeout
            + events
            + self.render_timeout
            + self.upload_timeout
            + self.upload_retry_budget
            + Duration::from_secs(60);
        total.min(MAX_VISIBILITY)
    }
}

/// One pulled message, as the API returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct PulledMessage {
    pub id: String,
    pub body: Value,
    #[serde(default)]
    pub attempts: u32,
    pub lease_id: String,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    pub timestamp_ms: Option<u64>,
}

/// What the queue's answers say of its backlog (Cloudflare's `result.metadata.metrics`, on
/// pull and ack answers since 2026-04-28; best effort, approximate): the signal to scale
/// renderers on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct Backlog {
    /// Messages not yet acknowledged (leased ones included).
    pub backlog_count: u64,
    #[serde(default)]
    pub backlog_bytes: u64,
    /// When the oldest of them was sent, in Unix milliseconds; 0 if unknown.
    #[serde(default)]
    pub oldest_message_timestamp_ms: u64,
}

impl Backlog {
    /// The backlog an answer's `result` reports: its `metadata.metrics`, else the older
    /// `message_backlog_count` alone.
    pub fn of(result: &Value) -> Option<Self> {
        let metrics = result.pointer("/metadata/metrics").cloned();
        if let Some(backlog) = metrics.and_then(|m| serde_json::from_value(m).ok()) {
            return Some(backlog);
        }
        let count = result.get("message_backlog_count")?.as_u64()?;
        Some(Self { backlog_count: count, ..Self::default() })
    }
}

/// A pull's answer: the messages leased, and the backlog as of it.
#[derive(Debug, Default)]
pub struct Pulled {
    pub messages: Vec<PulledMessage>,
    pub backlog: Option<Backlog>,
}

#[derive(Deserialize)]
struct Envelope {
    success: bool,
    #[serde(default)]
    errors: Vec<Value>,
    #[serde(default)]
    result: Option<Value>,
}

#[derive(Serialize)]
struct PullRequest {
    batch_size: usize,
    visibility_timeout_ms: u64,
}

#[derive(Serialize, Default)]
struct AckRequest {
    acks: Vec<Lease>,
    retries: Vec<RetryLease>,
}

#[derive(Serialize)]
struct Lease {
    lease_id: String,
}

#[derive(Serialize)]
struct RetryLease {
    lease_id: String,
    delay_seconds: u64,
}

/// The message's job: JSON bodies arrive base64-encoded; text bodies are the JSON itself.
pub fn decode_body(message: &PulledMessage) -> Result<RenderJobMessage, ServiceError> {
    let not_a_job = |source| ServiceError::NotAJob { id: message.id.clone(), source };
    match &message.body {
        Value::String(s) => {
            if let Ok(bytes) = BASE64.decode(s.trim()) {
                if let Ok(job) = serde_json::from_slice(&bytes) {
                    return Ok(job);
                }
            }
            serde_json::from_str(s).map_err(not_a_job)
        }
        other => serde_json::from_value(other.clone()).map_err(not_a_job),
    }
}

pub struct QueueClient {
    client: reqwest::Client,
    settings: PullSettings,
}

impl QueueClient {
    pub fn new(settings: PullSettings) -> Result<Self, ServiceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|source| ServiceError::Client { what: "the queue API", source })?;
        Ok(Self { client, settings })
    }

    fn url(&self, action: &str) -> Result<Url, ServiceError> {
        let s = &self.settings;
        let mut url = s.api_base.clone();
        url.path_segments_mut().map_err(|()| ServiceError::QueueBase)?.pop_if_empty().extend([
            "accounts",
            &s.account_id,
            "queues",
            &s.queue_id,
            "messages",
            action,
        ]);
        Ok(url)
    }

    async fn call<B: Serialize>(
        &self,
        action: &str,
        body: &B,
    ) -> Result<Option<Value>, ServiceError> {
        let response = self
            .client
            .post(self.url(action)?)
            .bearer_auth(&self.settings.api_token)
            .json(body)
            .send()
            .await
            .map_err(ServiceError::QueueUnreachable)?;
        let status = response.status();
        let envelope: Envelope = response.json().await.map_err(|e| ServiceError::QueueRefused {
            status,
            detail: format!("an answer that is not the API's envelope ({e})"),
        })?;
        if !status.is_success() || !envelope.success {
            return Err(ServiceError::QueueRefused {
                status,
                detail: format!("{:?}", envelope.errors),
            });
        }
        Ok(envelope.result)
    }

    pub async fn pull(&self, batch_size: usize) -> Result<Pulled, ServiceError> {
        let request = PullRequest {
            batch_size,
            visibility_timeout_ms: self.settings.visibility_timeout.as_millis() as u64,
        };
        let result = self.call("pull", &request).await?.unwrap_or(Value::Null);
        let backlog = Backlog::of(&result);
        // `result.messages`, or (newer API versions) `result` as the list itself.
        let list = match result {
            Value::Object(mut o) => o.remove("messages").unwrap_or(Value::Array(Vec::new())),
            Value::Array(a) => Value::Array(a),
            _ => Value::Array(Vec::new()),
        };
        let messages = serde_json::from_value(list).map_err(|e| ServiceError::QueueRefused {
            status: reqwest::StatusCode::OK,
            detail: format!("messages that are not messages ({e})"),
        })?;
        Ok(Pulled { messages, backlog })
    }

    /// Acknowledges a message; the backlog as of it, if the answer says.
    pub async fn ack(&self, lease_id: &str) -> Result<Option<Backlog>, ServiceError> {
        let body =
            AckRequest { acks: vec![Lease { lease_id: lease_id.to_owned() }], retries: Vec::new() };
        Ok(self.call("ack", &body).await?.as_ref().and_then(Backlog::of))
    }

    pub async fn retry(
        &self,
        lease_ids: Vec<String>,
        delay: Duration,
    ) -> Result<Option<Backlog>, ServiceError> {
        let retries = lease_ids
            .into_iter()
            .map(|lease_id| RetryLease { lease_id, delay_seconds: delay.as_secs() })
            .collect();
        let result = self.call("ack", &AckRequest { acks: Vec::new(), retries }).await?;
        Ok(result.as_ref().and_then(Backlog::of))
    }

    pub fn queue_id(&self) -> &str {
        &self.settings.queue_id
    }
}

/// What one task does with pulled messages: a job, the jobs of one batch together, or
/// nothing (a message that is no job).
enum Work {
    Unreadable(PulledMessage, ServiceError),
    Job(PulledMessage, Box<RenderJobMessage>),
    Group(Vec<(PulledMessage, RenderJobMessage)>),
}

impl Work {
    /// Whose place it takes.
    fn account(&self) -> &str {
        match self {
            Self::Unreadable(..) => "",
            Self::Job(_, job) => &job.account,
            Self::Group(members) => members.first().map_or("", |(_, job)| &job.account),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Group(members) => members.len(),
            _ => 1,
        }
    }

    fn leases(&self) -> Vec<String> {
        match self {
            Self::Unreadable(m, _) | Self::Job(m, _) => vec![m.lease_id.clone()],
            Self::Group(members) => members.iter().map(|(m, _)| m.lease_id.clone()).collect(),
        }
    }
}

/// Pulled messages as work: documents of one batch together, every other job on its own.
fn into_work(pulled: Vec<PulledMessage>) -> Vec<Work> {
    let mut work = Vec::new();
    let mut batches: Vec<(JobId, Vec<(PulledMessage, RenderJobMessage)>)> = Vec::new();
    for message in pulled {
        match decode_body(&message) {
            Err(e) => work.push(Work::Unreadable(message, e)),
            Ok(job) => match job.batch.as_ref().map(|b| b.batch_id.clone()) {
                None => work.push(Work::Job(message, Box::new(job))),
                Some(batch) => match batches.iter_mut().find(|(b, _)| *b == batch) {
                    Some((_, members)) => members.push((message, job)),
                    None => batches.push((batch, vec![(message, job)])),
                },
            },
        }
    }
    work.extend(batches.into_iter().map(|(_, members)| Work::Group(members)));
    work
}

/// Acknowledges the message of a job that ended, or hands it back to come again.
async fn settle(state: &AppState, queue: &QueueClient, lease: &str, end: JobEnd) {
    match end {
        JobEnd::Reported(_) | JobEnd::Gone => match queue.ack(lease).await {
            Ok(backlog) => {
                state.metrics.acks.inc();
                state.metrics.queue_backlog(queue.queue_id(), backlog);
            }
            Err(e) => {
                tracing::warn!(error = %e, "ack failed; the message will come back");
            }
        },
        JobEnd::Retry { delay, .. } => {
            state.metrics.retries.inc();
            match queue.retry(vec![lease.to_owned()], delay).await {
                Ok(backlog) => state.metrics.queue_backlog(queue.queue_id(), backlog),
                Err(e) => tracing::warn!(error = %e, "retry failed; the lease will expire"),
            }
        }
    }
}

/// Pulls until `stop` turns true, then hands back the leases still held after `grace`.
pub async fn run(
    state: Arc<AppState>,
    queue: QueueClient,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let settings = queue.settings.clone();
    let queue = Arc::new(queue);
    let held: Arc<Mutex<HashSet<String>>> = Arc::default();
    let parked = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    while !*stop.borrow() {
        // As many as there are places for, while fewer than `parking` jobs wait for one.
        let parking_full = parked.load(Ordering::SeqCst) >= settings.parking;
        let free = if parking_full { 0 } else { state.places.free_for_jobs() };
        let pulled = if free == 0 {
            Vec::new()
        } else {
            state.metrics.pulls.inc();
            match queue.pull(free.min(100)).await {
                Ok(Pulled { messages, backlog }) => {
                    state.metrics.queue_backlog(queue.queue_id(), backlog);
                    messages
                }
                Err(e) => {
                    tracing::warn!(error = %e, "pull failed");
                    Vec::new()
                }
            }
        };
        let idle = pulled.is_empty();
        for work in into_work(pulled) {
            state.metrics.messages_pulled.inc_by(work.len() as u64);
            let leases: Vec<String> = work.leases();
            if let Ok(mut h) = held.lock() {
                h.extend(leases.iter().cloned());
            }
            // Admitted now if its account has a place left, else parked until it has.
            let place = state.admit(work.account(), Purpose::Job);
            if place.is_none() {
                parked.fetch_add(1, Ordering::SeqCst);
            }
            let (state, queue, held, parked) =
                (state.clone(), queue.clone(), held.clone(), parked.clone());
            tasks.spawn(async move {
                let place = match place {
                    Some(place) => Some(place),
                    None => {
                        let place = state.places.admit_waiting(work.account()).await;
                        parked.fetch_sub(1, Ordering::SeqCst);
                        place
                    }
                };
                let ends = match (place.is_some(), work) {
                    (false, work) => {
                        // Stopping: hand it back for another renderer.
                        let delay = Duration::ZERO;
                        let reason = String::from("the renderer is stopping");
                        work.leases()
                            .into_iter()
                            .map(|l| (l, JobEnd::Retry { reason: reason.clone(), delay }))
                            .collect()
                    }
                    (true, Work::Unreadable(message, e)) => {
                        // A message that is not a job never becomes one: drop it, loudly.
                        tracing::error!(error = %e, "acknowledging an unreadable message");
                        vec![(message.lease_id, JobEnd::Gone)]
                    }
                    (true, Work::Job(message, job)) => {
                        let end = state.runner.run(*job, message.attempts.max(1)).await;
                        vec![(message.lease_id, end)]
                    }
                    (true, Work::Group(members)) => {
                        let jobs = members
                            .iter()
                            .map(|(m, job)| (job.clone(), m.attempts.max(1)))
                            .collect();
                        let ends = state.runner.run_group(jobs).await;
                        members.into_iter().map(|(m, _)| m.lease_id).zip(ends).collect()
                    }
                };
                drop(place);
                for (lease, end) in ends {
                    settle(&state, &queue, &lease, end).await;
                    if let Ok(mut h) = held.lock() {
                        h.remove(&lease);
                    }
                }
            });
        }
        while tasks.try_join_next().is_some() {}
        if free == 0 && !tasks.is_empty() {
            // Full with pulled jobs: pull again as soon as one of them ends, not an interval
            // later, or the renderer idles while the queue waits.
            tokio::select! {
                _ = tasks.join_next() => {}
                _ = stop.changed() => {}
            }
        } else if idle {
            tokio::select! {
                _ = tokio::time::sleep(settings.interval) => {}
                _ = stop.changed() => {}
            }
        }
    }
    // Stopping: no more pulls. Let running jobs end within the grace period, then hand back
    // what is still held so that another renderer takes it at once.
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    let leftover: Vec<String> =
        held.lock().map(|h| h.iter().cloned().collect()).unwrap_or_default();
    if !leftover.is_empty() {
        tracing::info!(count = leftover.len(), "handing back unfinished jobs");
        if let Err(e) = queue.retry(leftover, Duration::ZERO).await {
            tracing::warn!(error = %e, "could not hand back; the leases will expire");
        }
    }
    tasks.abort_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pull answer as Cloudflare's API reference gives it: `result.metadata.metrics`; and
    /// an older answer with `message_backlog_count` only; and one with neither.
    #[test]
    fn the_backlog_is_read_from_the_answer() {
        let answer = serde_json::json!({
            "message_backlog_count": 5,
            "messages": [],
            "metadata": {"metrics": {"backlog_count": 5, "backlog_bytes": 512,
                "oldest_message_timestamp_ms": 1_710_950_954_154u64}}
        });
        let backlog = Backlog {
            backlog_count: 5,
            backlog_bytes: 512,
            oldest_message_timestamp_ms: 1_710_950_954_154,
        };
        assert_eq!(Backlog::of(&answer), Some(backlog));
        let older = serde_json::json!({"message_backlog_count": 3, "messages": []});
        assert_eq!(Backlog::of(&older), Some(Backlog { backlog_count: 3, ..Backlog::default() }));
        assert_eq!(Backlog::of(&serde_json::json!({"messages": []})), None);
        assert_eq!(Backlog::of(&serde_json::json!({"ackCount": 1})), None);
    }

    #[test]
    fn the_lease_covers_the_worst_case_of_a_job() {
        let bounds = JobBounds {
            render_timeout: Duration::from_secs(30),
            tabs: 2,
            ahead: 8,
            upload_timeout: Duration::from_secs(60),
            upload_retry_budget: Duration::from_secs(60),
            event_retry_budget: Duration::from_secs(60),
            edge_call_timeout: Duration::from_secs(10),
        };
        // Four waves of waiting (120 s: the places and the parked jobs ahead), the spec (10),
        // three events (210), the render (30), the upload (120), the margin (60).
        assert_eq!(bounds.worst_case(), Duration::from_secs(550));
        let more_tabs = JobBounds { tabs: 4, ..bounds };
        assert_eq!(bounds.worst_case() - more_tabs.worst_case(), Duration::from_secs(60));
        let slower = JobBounds { render_timeout: Duration::from_secs(300), ..bounds };
        assert!(slower.worst_case() > bounds.worst_case() + Duration::from_secs(800));
        let absurd = JobBounds { event_retry_budget: Duration::from_secs(86_400), ..bounds };
        assert_eq!(absurd.worst_case(), MAX_VISIBILITY, "the API's maximum");
    }
    use tailpdf_shared::{messages::SecretUrl, JobId};

    fn message(body: Value, content_type: &str) -> PulledMessage {
        serde_json::from_value(serde_json::json!({
            "id": "m1", "body": body, "attempts": 2, "lease_id": "l1",
            "timestamp_ms": 1, "metadata": {"CF-Content-Type": content_type}
        }))
        .unwrap()
    }

    #[test]
    fn json_bodies_are_base64_and_text_bodies_are_json() {
        let job = RenderJobMessage {
            v: 1,
            job_id: JobId::generate(),
            account: "a".into(),
            upload_url: SecretUrl::new("https://b.example/x.pdf?s=1"),
            spec: None,
            attempt: 1,
            traceparent: Some(String::from(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )),
            batch: None,
            taken_by: None,
        };
        let json = serde_json::to_vec(&job).unwrap();
        let b64 = Value::String(BASE64.encode(&json));
        assert_eq!(decode_body(&message(b64, "json")).unwrap(), job);
        let text = Value::String(String::from_utf8(json).unwrap());
        assert_eq!(decode_body(&message(text, "text")).unwrap(), job);
        assert!(decode_body(&message(Value::String("garbage".into()), "text")).is_err());
    }
}
