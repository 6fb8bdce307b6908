//! Webhooks: the seed's `render.completed` / `render.failed` payloads, our `batch.completed`
//! (a tailpdf extension, for `POST /pdf/batch`), and every header of a delivery, TailPDF's and
//! Standard Webhooks'.

use serde::{Deserialize, Serialize};

use crate::{
    batch::BatchJobState,
    job::{JobRecord, RenderResult},
    signing::{tailpdf_signature, StandardWebhookKey, TAILPDF_SIGNATURE_HEADER},
    JobId, JobStatus, Timestamp,
};

pub const USER_AGENT: &str = "TailPDF-Webhook/1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookEvent {
    #[serde(rename = "render.completed")]
    RenderCompleted,
    #[serde(rename = "render.failed")]
    RenderFailed,
    /// Every document of a batch has ended (`POST /pdf/batch`).
    #[serde(rename = "batch.completed")]
    BatchCompleted,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RenderCompleted => "render.completed",
            Self::RenderFailed => "render.failed",
            Self::BatchCompleted => "batch.completed",
        }
    }
}

/// The body of a delivery, exactly the seed's shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPayload {
    pub event: WebhookEvent,
    pub job_id: JobId,
    pub timestamp: Timestamp,
    pub data: WebhookData,
}

/// `data`: `{"status":"completed", <result>}` or `{"status":"failed","error_message":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase", deny_unknown_fields)]
pub enum WebhookData {
    Completed { file_size_bytes: u64, render_duration_ms: u64, upload_duration_ms: u64 },
    Failed { error_message: String },
}

impl WebhookPayload {
    /// The payload for a job that has ended; `None` while it runs.
    pub fn for_job(job: &JobRecord) -> Option<Self> {
        let timestamp = job.completed_at?;
        let (event, data) = match job.status {
            JobStatus::Completed => {
                let RenderResult { file_size_bytes, render_duration_ms, upload_duration_ms } =
                    job.result?;
                (
                    WebhookEvent::RenderCompleted,
                    WebhookData::Completed {
                        file_size_bytes,
                        render_duration_ms,
                        upload_duration_ms,
                    },
                )
            }
            JobStatus::Failed => (
                WebhookEvent::RenderFailed,
                WebhookData::Failed {
                    error_message: job.error_message.clone().unwrap_or_default(),
                },
            ),
            _ => return None,
        };
        Some(Self { event, job_id: job.job_id.clone(), timestamp, data })
    }

    /// Whether this webhook still tells the truth about the job's stored end (the status of
    /// the end event as stored): one job has one outcome. Two different ends racing (a late
    /// `completed` against the dead-letter `failed`) may both be applied and both queue a
    /// webhook; the stored end is the one written last, and only the webhook that matches it
    /// is delivered. No stored end (expired, or a read that lags the write) contradicts
    /// nothing.
    pub fn agrees_with(&self, stored_end: Option<JobStatus>) -> bool {
        match stored_end {
            Some(JobStatus::Completed) => self.event == WebhookEvent::RenderCompleted,
            Some(JobStatus::Failed) => self.event == WebhookEvent::RenderFailed,
            _ => true,
        }
    }

    /// The stable Standard Webhooks `webhook-id` of this event: every attempt and every
    /// duplicate of the same event carries the same id.
    pub fn webhook_id(&self) -> String {
        webhook_id(&self.job_id, self.event)
    }

    pub fn to_body(&self) -> String {
        // Plain data with string keys always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `msg_<job id>_<completed|failed>`, `msg_<batch id>_batch_completed`.
pub fn webhook_id(id: &JobId, event: WebhookEvent) -> String {
    let suffix = match event {
        WebhookEvent::RenderCompleted => "completed",
        WebhookEvent::RenderFailed => "failed",
        WebhookEvent::BatchCompleted => "batch_completed",
    };
    format!("msg_{id}_{suffix}")
}

/// The body of `batch.completed`: every document of the batch has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchWebhookPayload {
    pub event: WebhookEvent,
    pub batch_id: JobId,
    /// When the last document ended: the same in every attempt and duplicate.
    pub timestamp: Timestamp,
    pub data: BatchWebhookData,
}

/// `data` of `batch.completed`: the counts and every job's end, in the order of `documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchWebhookData {
    pub total: u32,
    pub completed: u32,
    pub failed: u32,
    pub jobs: Vec<BatchJobState>,
}

impl BatchWebhookPayload {
    pub fn completed(batch_id: JobId, at: Timestamp, jobs: Vec<BatchJobState>) -> Self {
        let count = |status| {
            let n = jobs.iter().filter(|j| j.status == status).count();
            u32::try_from(n).unwrap_or(u32::MAX)
        };
        let data = BatchWebhookData {
            total: u32::try_from(jobs.len()).unwrap_or(u32::MAX),
            completed: count(JobStatus::Completed),
            failed: count(JobStatus::Failed),
            jobs,
        };
        Self { event: WebhookEvent::BatchCompleted, batch_id, timestamp: at, data }
    }
}

/// What a `webhooks` queue message delivers: a job's end or a batch's. Untagged, so that the
/// job payloads queued before batches existed read as they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WebhookBody {
    Job(WebhookPayload),
    Batch(BatchWebhookPayload),
}

impl From<WebhookPayload> for WebhookBody {
    fn from(payload: WebhookPayload) -> Self {
        Self::Job(payload)
    }
}

impl From<BatchWebhookPayload> for WebhookBody {
    fn from(payload: BatchWebhookPayload) -> Self {
        Self::Batch(payload)
    }
}

impl WebhookBody {
    pub fn event(&self) -> WebhookEvent {
        match self {
            Self::Job(p) => p.event,
            Self::Batch(p) => p.event,
        }
    }

    /// The job's id, or the batch's.
    pub fn subject(&self) -> &JobId {
        match self {
            Self::Job(p) => &p.job_id,
            Self::Batch(p) => &p.batch_id,
        }
    }

    /// The job's payload, when it is one.
    pub fn job(&self) -> Option<&WebhookPayload> {
        match self {
            Self::Job(p) => Some(p),
            Self::Batch(_) => None,
        }
    }

    /// The stable Standard Webhooks `webhook-id` of this event.
    pub fn webhook_id(&self) -> String {
        webhook_id(self.subject(), self.event())
    }

    pub fn to_body(&self) -> String {
        // Plain data with string keys always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Every header of one delivery attempt of `body` (the exact bytes sent) at `now`.
/// `X-TailPDF-Signature` and `webhook-signature` only when the account has a secret.
pub fn delivery_headers(
    event: WebhookEvent,
    webhook_id: &str,
    body: &str,
    secret: Option<&str>,
    now: i64,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("Content-Type", String::from("application/json")),
        ("User-Agent", String::from(USER_AGENT)),
        ("X-TailPDF-Event", event.as_str().to_owned()),
        ("webhook-id", webhook_id.to_owned()),
        ("webhook-timestamp", now.to_string()),
    ];
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        headers.push((TAILPDF_SIGNATURE_HEADER, tailpdf_signature(secret, body.as_bytes())));
        let key = StandardWebhookKey::from_secret(secret);
        headers.push(("webhook-signature", key.sign(webhook_id, now, body.as_bytes())));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{job::JobEvent, signing::verify_tailpdf_signature};

    fn ended(event: &JobEvent) -> JobRecord {
        let mut job = JobRecord::new(
            JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap(),
            "acct",
            Timestamp::from_unix(1_734_258_600).unwrap(),
        );
        job.apply(event);
        job
    }

    #[test]
    fn a_webhook_agrees_only_with_the_end_it_reports() {
        let at = Timestamp::from_unix(1_734_258_602).unwrap();
        let result =
            RenderResult { file_size_bytes: 1, render_duration_ms: 1, upload_duration_ms: 1 };
        let done = WebhookPayload::for_job(&ended(&JobEvent::Completed { at, result })).unwrap();
        let gave_up =
            WebhookPayload::for_job(&ended(&JobEvent::Failed { at, error_message: "x".into() }))
                .unwrap();
        let (completed, failed) = (Some(JobStatus::Completed), Some(JobStatus::Failed));
        assert!(done.agrees_with(completed) && !done.agrees_with(failed));
        assert!(gave_up.agrees_with(failed) && !gave_up.agrees_with(completed));
        assert!(gave_up.agrees_with(None), "expired, or a lagging read: nothing to contradict");
    }

    #[test]
    fn completed_payload_matches_the_seed() {
        let job = ended(&JobEvent::Completed {
            at: Timestamp::from_unix(1_734_258_602).unwrap(),
            result: RenderResult {
                file_size_bytes: 45678,
                render_duration_ms: 850,
                upload_duration_ms: 120,
            },
        });
        let p = WebhookPayload::for_job(&job).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"event":"render.completed","job_id":"01JFXYZ123456789ABCDEFGH","timestamp":"2024-12-15T10:30:02Z",
                "data":{"status":"completed","file_size_bytes":45678,"render_duration_ms":850,"upload_duration_ms":120}})
        );
        assert_eq!(p.webhook_id(), "msg_01JFXYZ123456789ABCDEFGH_completed");
    }

    #[test]
    fn failed_payload_matches_the_seed() {
        let job = ended(&JobEvent::Failed {
            at: Timestamp::from_unix(1_734_258_605).unwrap(),
            error_message: "Upload failed: 403 Forbidden".into(),
        });
        let p = WebhookPayload::for_job(&job).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"event":"render.failed","job_id":"01JFXYZ123456789ABCDEFGH","timestamp":"2024-12-15T10:30:05Z",
                "data":{"status":"failed","error_message":"Upload failed: 403 Forbidden"}})
        );
    }

    #[test]
    fn batch_completed_payload_and_its_id() {
        let job = |n: &str, status| BatchJobState { job_id: JobId::parse(n).unwrap(), status };
        let p = BatchWebhookPayload::completed(
            JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap(),
            Timestamp::from_unix(1_734_258_605).unwrap(),
            vec![
                job("01JFXYZ123456789ABCDEFGJ", JobStatus::Completed),
                job("01JFXYZ123456789ABCDEFGK", JobStatus::Failed),
            ],
        );
        let body = WebhookBody::from(p);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body.to_body()).unwrap(),
            serde_json::json!({"event":"batch.completed","batch_id":"01JFXYZ123456789ABCDEFGH","timestamp":"2024-12-15T10:30:05Z",
                "data":{"total":2,"completed":1,"failed":1,"jobs":[
                    {"job_id":"01JFXYZ123456789ABCDEFGJ","status":"completed"},
                    {"job_id":"01JFXYZ123456789ABCDEFGK","status":"failed"}]}})
        );
        assert_eq!(body.webhook_id(), "msg_01JFXYZ123456789ABCDEFGH_batch_completed");
        assert_eq!(body.event().as_str(), "batch.completed");
        assert_eq!(serde_json::from_str::<WebhookBody>(&body.to_body()).unwrap(), body);
    }

    #[test]
    fn a_job_payload_reads_as_a_webhook_body_unchanged() {
        let job = ended(&JobEvent::Failed {
            at: Timestamp::from_unix(1_734_258_605).unwrap(),
            error_message: "x".into(),
        });
        let p = WebhookPayload::for_job(&job).unwrap();
        let body: WebhookBody = serde_json::from_str(&p.to_body()).unwrap();
        assert_eq!(body, WebhookBody::Job(p.clone()));
        assert_eq!(body.to_body(), p.to_body(), "the same bytes as before batches");
        assert_eq!(body.webhook_id(), p.webhook_id());
    }

    #[test]
    fn no_payload_while_running() {
        assert!(WebhookPayload::for_job(&ended(&JobEvent::Processing {
            at: Timestamp::from_unix(1_734_258_601).unwrap()
        }))
        .is_none());
    }

    #[test]
    fn headers_with_and_without_a_secret() {
        let body = r#"{"event":"render.failed"}"#;
        let h = delivery_headers(WebhookEvent::RenderFailed, "msg_x_failed", body, Some("sec"), 77);
        let get = |name: &str| h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        assert_eq!(get("User-Agent").as_deref(), Some("TailPDF-Webhook/1.0"));
        assert_eq!(get("X-TailPDF-Event").as_deref(), Some("render.failed"));
        assert_eq!(get("Content-Type").as_deref(), Some("application/json"));
        assert_eq!(get("webhook-timestamp").as_deref(), Some("77"));
        assert!(verify_tailpdf_signature(
            "sec",
            body.as_bytes(),
            &get("X-TailPDF-Signature").unwrap()
        )
        .is_ok());
        let key = StandardWebhookKey::from_secret("sec");
        assert!(key
            .verify("msg_x_failed", "77", &get("webhook-signature").unwrap(), body.as_bytes(), 77)
            .is_ok());

        let h = delivery_headers(WebhookEvent::RenderFailed, "msg_x_failed", body, None, 77);
        assert!(h.iter().all(|(n, _)| *n != "X-TailPDF-Signature" && *n != "webhook-signature"));
        assert!(h.iter().any(|(n, _)| *n == "webhook-id"));
    }
}
