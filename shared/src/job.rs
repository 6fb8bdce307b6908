//! Jobs: their states, the forward-only state machine, and the JSON `GET /jobs/{id}` returns.
//!
//! `pending → processing → uploading → completed | failed`. Events arrive at least once and
//! possibly late, so [`JobRecord::apply`] only ever moves a job forward: a repeated event or one
//! behind the job's state is reported as such and changes nothing.

use serde::{Deserialize, Serialize};

use crate::{JobId, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Processing,
    Uploading,
    Completed,
    Failed,
}

impl JobStatus {
    /// Position in the life of a job; the two terminal states share the last one.
    pub fn rank(self) -> u8 {
        match self {
            Self::Pending => 0,
            Self::Processing => 1,
            Self::Uploading => 2,
            Self::Completed | Self::Failed => 3,
        }
    }

    pub fn is_terminal(self) -> bool {
        self.rank() == 3
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::Uploading => "uploading",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens when a job in state `from` receives an event for state `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The job moves forward.
    Applied { from: JobStatus, to: JobStatus },
    /// The job is already in that state: acknowledge, change nothing.
    Repeated,
    /// The event is behind the job (or a different end for a job that has ended): acknowledge,
    /// change nothing.
    Stale { current: JobStatus, event: JobStatus },
}

impl Transition {
    /// The transition rule on its own: forward moves only, skipping states is allowed.
    pub fn between(from: JobStatus, to: JobStatus) -> Self {
        if from == to {
            Self::Repeated
        } else if to.rank() > from.rank() {
            Self::Applied { from, to }
        } else {
            Self::Stale { current: from, event: to }
        }
    }

    pub fn is_applied(self) -> bool {
        matches!(self, Self::Applied { .. })
    }

    /// Whether this transition ended the job: the one moment a webhook is due.
    pub fn ends_job(self) -> bool {
        matches!(self, Self::Applied { to, .. } if to.is_terminal())
    }
}

/// Figures of a completed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderResult {
    pub file_size_bytes: u64,
    pub render_duration_ms: u64,
    pub upload_duration_ms: u64,
}

/// A state change reported by the renderer (`POST /internal/jobs/{id}/events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase", deny_unknown_fields)]
pub enum JobEvent {
    Processing { at: Timestamp },
    Uploading { at: Timestamp },
    Completed { at: Timestamp, result: RenderResult },
    Failed { at: Timestamp, error_message: String },
}

impl JobEvent {
    pub fn status(&self) -> JobStatus {
        match self {
            Self::Processing { .. } => JobStatus::Processing,
            Self::Uploading { .. } => JobStatus::Uploading,
            Self::Completed { .. } => JobStatus::Completed,
            Self::Failed { .. } => JobStatus::Failed,
        }
    }

    pub fn at(&self) -> Timestamp {
        match self {
            Self::Processing { at }
            | Self::Uploading { at }
            | Self::Completed { at, .. }
            | Self::Failed { at, .. } => *at,
        }
    }
}

/// How webhook delivery went, shown in the job JSON beside TailPDF's own fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Timestamp>,
}

/// A job as the edge keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: JobId,
    pub account: String,
    pub status: JobStatus,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RenderResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookDelivery>,
}

impl JobRecord {
    pub fn new(job_id: JobId, account: impl Into<String>, created_at: Timestamp) -> Self {
        Self {
            job_id,
            account: account.into(),
            status: JobStatus::Pending,
            created_at,
            started_at: None,
            completed_at: None,
            result: None,
            error_message: None,
            webhook: None,
        }
    }

    /// Applies `event` if it moves the job forward; returns what happened.
    pub fn apply(&mut self, event: &JobEvent) -> Transition {
        let transition = Transition::between(self.status, event.status());
        if !transition.is_applied() {
            return transition;
        }
        // Timestamps never run backwards, even when clocks disagree a little.
        let at = event.at().max(self.created_at);
        self.status = event.status();
        if self.started_at.is_none() {
            self.started_at = Some(at);
        }
        match event {
            JobEvent::Processing { .. } | JobEvent::Uploading { .. } => {}
            JobEvent::Completed { result, .. } => {
                self.result = Some(*result);
                self.completed_at = Some(at.max(self.started_at.unwrap_or(at)));
            }
            JobEvent::Failed { error_message, .. } => {
                self.error_message = Some(error_message.clone());
                self.completed_at = Some(at.max(self.started_at.unwrap_or(at)));
            }
        }
        transition
    }

    /// The public JSON of `GET /jobs/{id}`.
    pub fn view(&self) -> JobView {
        JobView {
            job_id: self.job_id.clone(),
            status: self.status,
            created_at: self.created_at,
            started_at: self.started_at,
            completed_at: self.completed_at,
            result: self.result,
            error_message: self.error_message.clone(),
            webhook: self.webhook,
        }
    }
}

/// `GET /jobs/{id}`, exactly the seed's fields; absent ones are omitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobView {
    pub job_id: JobId,
    pub status: JobStatus,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RenderResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Ours, not TailPDF's: how webhook delivery went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookDelivery>,
}

/// The `202 Accepted` body of an async `POST /pdf`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobAccepted {
    pub job_id: JobId,
    pub status: JobStatus,
    pub status_url: String,
}

impl JobAccepted {
    pub fn new(job_id: JobId) -> Self {
        let status_url = status_path(&job_id);
        Self { job_id, status: JobStatus::Pending, status_url }
    }
}

/// `/jobs/{id}`: the `status_url` and the `Location` header.
pub fn status_path(job_id: &JobId) -> String {
    format!("/jobs/{job_id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus::*;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_unix(1_734_258_600 + s).unwrap()
    }

    fn record() -> JobRecord {
        JobRecord::new(JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap(), "acct", ts(0))
    }

    const RESULT: RenderResult =
        RenderResult { file_size_bytes: 45678, render_duration_ms: 850, upload_duration_ms: 120 };

    #[test]
    fn transition_table() {
        let all = [Pending, Processing, Uploading, Completed, Failed];
        for from in all {
            for to in all {
                let t = Transition::between(from, to);
                let expected_applied = to.rank() > from.rank();
                assert_eq!(t.is_applied(), expected_applied, "{from} -> {to}");
                if from == to {
                    assert_eq!(t, Transition::Repeated);
                } else if !expected_applied {
                    assert_eq!(t, Transition::Stale { current: from, event: to });
                }
                assert_eq!(t.ends_job(), expected_applied && to.is_terminal());
            }
        }
    }

    #[test]
    fn a_job_moves_forward_and_records_its_times() {
        let mut job = record();
        assert!(job.apply(&JobEvent::Processing { at: ts(1) }).is_applied());
        assert!(job.apply(&JobEvent::Uploading { at: ts(2) }).is_applied());
        let t = job.apply(&JobEvent::Completed { at: ts(2), result: RESULT });
        assert!(t.ends_job());
        assert_eq!(job.status, Completed);
        assert_eq!(job.started_at, Some(ts(1)));
        assert_eq!(job.completed_at, Some(ts(2)));
        assert_eq!(job.result, Some(RESULT));
    }

    #[test]
    fn repeated_and_late_events_change_nothing() {
        let mut job = record();
        job.apply(&JobEvent::Processing { at: ts(1) });
        job.apply(&JobEvent::Completed { at: ts(3), result: RESULT });
        let before = job.clone();
        assert_eq!(
            job.apply(&JobEvent::Completed { at: ts(9), result: RESULT }),
            Transition::Repeated
        );
        assert_eq!(
            job.apply(&JobEvent::Uploading { at: ts(4) }),
            Transition::Stale { current: Completed, event: Uploading }
        );
        assert_eq!(
            job.apply(&JobEvent::Failed { at: ts(5), error_message: "late".into() }),
            Transition::Stale { current: Completed, event: Failed }
        );
        assert_eq!(job, before);
    }

    #[test]
    fn a_job_can_fail_before_it_started() {
        let mut job = record();
        let t = job.apply(&JobEvent::Failed {
            at: ts(1),
            error_message: "Upload failed: 403 Forbidden".into(),
        });
        assert!(t.ends_job());
        assert_eq!(job.started_at, Some(ts(1)));
        assert_eq!(job.completed_at, Some(ts(1)));
        assert_eq!(job.error_message.as_deref(), Some("Upload failed: 403 Forbidden"));
    }

    #[test]
    fn times_never_run_backwards() {
        let mut job = record();
        job.apply(&JobEvent::Processing { at: ts(-5) });
        job.apply(&JobEvent::Completed { at: ts(-10), result: RESULT });
        let v = job.view();
        assert!(v.created_at <= v.started_at.unwrap());
        assert!(v.started_at.unwrap() <= v.completed_at.unwrap());
    }

    #[test]
    fn pending_view_omits_absent_fields() {
        let json = serde_json::to_value(record().view()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"job_id":"01JFXYZ123456789ABCDEFGH","status":"pending","created_at":"2024-12-15T10:30:00Z"})
        );
    }

    #[test]
    fn accepted_body() {
        let a = JobAccepted::new(JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap());
        assert_eq!(
            serde_json::to_value(a).unwrap(),
            serde_json::json!({"job_id":"01JFXYZ123456789ABCDEFGH","status":"pending","status_url":"/jobs/01JFXYZ123456789ABCDEFGH"})
        );
    }

    #[test]
    fn events_are_tagged_by_status() {
        let e: JobEvent = serde_json::from_str(
            r#"{"status":"completed","at":"2024-12-15T10:30:02Z","result":{"file_size_bytes":1,"render_duration_ms":2,"upload_duration_ms":3}}"#,
        )
        .unwrap();
        assert_eq!(e.status(), Completed);
        assert!(serde_json::from_str::<JobEvent>(
            r#"{"status":"pending","at":"2024-12-15T10:30:02Z"}"#
        )
        .is_err());
    }
}
