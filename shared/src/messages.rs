//! Messages between the parts: the `render-jobs` and `webhooks` queue bodies, and the bodies
//! of the internal edge ↔ renderer calls. Presigned URLs inside them are secrets: their `Debug`
//! shows no query string.

use serde::{Deserialize, Serialize};

use crate::{
    job::{JobStatus, RenderResult},
    limits::INLINE_SPEC_MAX_BYTES,
    url_guard::redact_url,
    webhook::WebhookBody,
    JobId, RenderSpec,
};

/// A URL whose query may carry a signature: serialized as is, never printed whole.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The full URL, for the request itself only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

pub const RENDER_JOB_MESSAGE_VERSION: u8 = 1;

/// A `render-jobs` message: one job for a renderer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderJobMessage {
    pub v: u8,
    pub job_id: JobId,
    pub account: String,
    pub upload_url: SecretUrl,
    /// The spec itself when small; otherwise the renderer fetches
    /// `GET /internal/jobs/{id}/spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<RenderSpec>,
    /// Which delivery this is, from 1 (push mode; pull mode has Queues' own count).
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// The W3C `traceparent` of the edge's handling of the job's `POST /pdf` (crate::trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The batch this job is a document of (`POST /pdf/batch`): the renderer prints the
    /// documents of one batch together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchRef>,
    /// Push mode with several renderers: the origin of the one that took the job, which alone
    /// can say what became of it (the edge asks it, and only it, until the job ends there or
    /// it stops answering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_by: Option<String>,
}

/// A document's place in its batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRef {
    pub batch_id: JobId,
    /// Its index in the batch's `documents`, from 0.
    pub index: u32,
}

/// `POST /jobs/group` (push mode): jobs of one batch for the renderer to print together, each
/// run to its end as `POST /jobs` would.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRequest {
    pub jobs: Vec<RenderJobMessage>,
}

/// The `200` answer to `POST /jobs/group`: what became of each job, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAnswer {
    pub jobs: Vec<GroupJobEnd>,
}

/// How one job of a group ended on the renderer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum GroupJobEnd {
    /// Ended, and the edge accepted its terminal event (or it had ended before): done.
    Ended { job_id: JobId },
    /// Not ended (Chromium crashed, the edge was unreachable, the renderer is stopping):
    /// deliver it again, no sooner than `delay_secs` from now.
    Retry { job_id: JobId, delay_secs: u32 },
}

/// Push mode's call from the Worker's `render-jobs` consumer: the renderer takes the job and
/// answers at once, and the job runs there on its own. The consumer asks again about the same
/// job (the same call) after a while, until the answer is [`TakeAnswer::Ended`]: nothing holds
/// a queue delivery while a render runs, so one account's long renders never hold up another
/// account's jobs at the edge, and a renderer that died with the job is noticed at the next
/// question (it no longer knows the job, and starts it again).
pub const TAKE_PATH: &str = "/jobs/take";

/// The body of `POST /jobs/take`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TakeRequest {
    /// The job; its `attempt` is the number a run started now gets.
    pub job: RenderJobMessage,
    /// Whether the renderer may start the job if it does not have it. False once the job has
    /// been started as often as the edge allows: then only what became of it is asked.
    pub start: bool,
}

/// The `200` answer to `POST /jobs/take`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TakeAnswer {
    /// Not here before, started now as the request's attempt (it waits for a tab, or runs).
    Taken,
    /// Here already: waiting for a tab, or running.
    Running,
    /// Ended here: its end was reported to the edge, or it had ended before.
    Ended,
    /// Its run here ended without ending the job (Chromium crashed, the edge could not be
    /// reached, …): start it again, no sooner than `delay_secs` from now.
    Retry { delay_secs: u32, reason: String },
    /// No room for it now: this account's share of the renderer is taken, or every place is.
    /// Ask again after `delay_secs`; nothing was started, so it is no attempt.
    Busy { delay_secs: u32 },
    /// Not here, and not started because the request said not to.
    Unknown,
}

fn first_attempt() -> u32 {
    1
}

impl RenderJobMessage {
    /// Inlines `spec` when its JSON is at most [`INLINE_SPEC_MAX_BYTES`], keeping the message
    /// well under Queues' 128 KB.
    pub fn new(
        job_id: JobId,
        account: impl Into<String>,
        upload_url: SecretUrl,
        spec: &RenderSpec,
    ) -> Self {
        let spec = Self::travels_inline(spec).then(|| spec.clone());
        Self::with_spec(job_id, account, upload_url, spec)
    }

    /// A first attempt carrying `spec`, or none (the renderer fetches it): for callers that
    /// already know whether it [travels inline](Self::travels_inline).
    pub fn with_spec(
        job_id: JobId,
        account: impl Into<String>,
        upload_url: SecretUrl,
        spec: Option<RenderSpec>,
    ) -> Self {
        Self {
            v: RENDER_JOB_MESSAGE_VERSION,
            job_id,
            account: account.into(),
            upload_url,
            spec,
            attempt: 1,
            traceparent: None,
            batch: None,
            taken_by: None,
        }
    }

    /// Whether [`Self::new`] inlines `spec` (its JSON is at most [`INLINE_SPEC_MAX_BYTES`]).
    pub fn travels_inline(spec: &RenderSpec) -> bool {
        serde_json::to_vec(spec).map(|j| j.len() <= INLINE_SPEC_MAX_BYTES).unwrap_or(false)
    }
}

/// The renderer's sync render endpoint.
pub const SYNC_RENDER_PATH: &str = "/render";

/// The path of a sync render for `account`, the edge's opaque id of it (never a key): it
/// travels in the query of the signed path, so the renderer can share its tabs fairly.
pub fn sync_render_path(account: &str) -> String {
    let account: String = url::form_urlencoded::byte_serialize(account.as_bytes()).collect();
    format!("{SYNC_RENDER_PATH}?account={account}")
}

/// The account of a sync render's query; empty (nobody in particular) when there is none.
pub fn sync_render_account(query: Option<&str>) -> String {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find_map(|(k, v)| (k == "account").then(|| v.into_owned()))
        .unwrap_or_default()
}

/// A `webhooks` message: one delivery to make (and retry) for an ended job or a completed
/// batch. The secret is looked up by account at delivery time, never carried in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookMessage {
    pub account: String,
    pub url: SecretUrl,
    /// A job's payload serializes as it did before batches: messages queued then still read.
    pub payload: WebhookBody,
    /// Deliveries made so far (Queues' own attempt count is not exposed to Rust Workers).
    #[serde(default)]
    pub attempt: u32,
}

/// The edge's answer to an event: whether it moved the job, and the job's state after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAck {
    pub applied: bool,
    pub status: JobStatus,
}

/// The renderer's answer to `POST /jobs` (push mode): how the job ended, exactly as reported
/// to the edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum JobOutcome {
    Completed { job_id: JobId, result: RenderResult },
    Failed { job_id: JobId, error_message: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf_options::PdfOptions;

    fn spec(content: String) -> RenderSpec {
        RenderSpec {
            content,
            fonts: vec![],
            config: None,
            pdf_options: PdfOptions::default(),
            no_store: false,
        }
    }

    const URL: &str = "https://b.s3.amazonaws.com/a.pdf?X-Amz-Signature=deadbeef";

    #[test]
    fn small_specs_travel_inline_large_ones_do_not() {
        let id = JobId::generate();
        let small = RenderJobMessage::new(id.clone(), "a", SecretUrl::new(URL), &spec("x".into()));
        assert!(small.spec.is_some());
        let big = RenderJobMessage::new(
            id,
            "a",
            SecretUrl::new(URL),
            &spec("x".repeat(INLINE_SPEC_MAX_BYTES)),
        );
        assert!(big.spec.is_none());
        let json = serde_json::to_vec(&big).unwrap();
        assert!(json.len() < crate::limits::QUEUE_MESSAGE_MAX_BYTES);
    }

    #[test]
    fn debug_output_hides_presigned_signatures() {
        let m =
            RenderJobMessage::new(JobId::generate(), "a", SecretUrl::new(URL), &spec("x".into()));
        let shown = format!("{m:?}");
        assert!(!shown.contains("deadbeef"), "{shown}");
        assert!(shown.contains("b.s3.amazonaws.com/a.pdf"));
        // ...but the wire form keeps the whole URL.
        assert!(serde_json::to_string(&m).unwrap().contains("deadbeef"));
    }

    #[test]
    fn a_sync_render_carries_its_account_in_the_query() {
        for account in ["dev", "acme corp/eu&x=1", "ünï", ""] {
            let path = sync_render_path(account);
            let (route, query) = path.split_once('?').unwrap();
            assert_eq!(route, SYNC_RENDER_PATH);
            assert_eq!(sync_render_account(Some(query)), account, "{path}");
        }
        assert_eq!(sync_render_account(None), "");
        assert_eq!(sync_render_account(Some("other=1")), "");
    }

    #[test]
    fn outcome_is_tagged_by_status() {
        let o = JobOutcome::Failed {
            job_id: JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap(),
            error_message: "Upload failed: 403 Forbidden".into(),
        };
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            serde_json::json!({"status":"failed","job_id":"01JFXYZ123456789ABCDEFGH","error_message":"Upload failed: 403 Forbidden"})
        );
    }
}
