//! Running one job to its end: spec, `processing` and the render at once, `uploading`,
//! upload, then `completed` or `failed`; nothing is uploaded before the edge has accepted
//! `uploading`.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tailpdf_shared::{
    job::RenderResult,
    messages::{JobOutcome, RenderJobMessage},
    trace::TraceParent,
    JobEvent,
};
use tracing::Instrument;

use super::{
    edge::{now_timestamp, EdgeClient},
    error::ServiceError,
    metrics::Metrics,
    retry::{backoff, jitter},
    upload::{upload, UploadPolicy},
};
use crate::{engine::Engine, net::GuardedFetcher};

/// How a job run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// The job ended and the edge accepted its terminal event: acknowledge the message.
    Reported(JobOutcome),
    /// Not ended (the renderer is stopping, Chromium crashed, the edge is unreachable):
    /// deliver the message again after `delay`.
    Retry { reason: String, delay: Duration },
    /// The job already ended at the edge (its spec is gone, or an event's answer says so): a
    /// repeated delivery has nothing left to do, and uploads and reports nothing: acknowledge.
    Gone,
}

pub struct Runner {
    pub(crate) engine: Engine,
    pub(crate) uploads: GuardedFetcher,
    pub(crate) upload_policy: UploadPolicy,
    pub(crate) edge: EdgeClient,
    pub(crate) max_attempts: u32,
    pub(crate) metrics: Arc<Metrics>,
}

impl Runner {
    /// Runs `message`, delivery number `attempt` (from 1).
    pub async fn run(&self, message: RenderJobMessage, attempt: u32) -> JobEnd {
        // The trace of the job's POST /pdf at the edge: its lines there and here share it.
        let trace = message.traceparent.as_deref().and_then(TraceParent::parse);
        let trace_id = trace.as_ref().map_or("-", TraceParent::trace_id).to_owned();
        let span = tracing::info_span!("job", job_id = %message.job_id, account = %message.account, attempt, trace_id = %trace_id);
        async move {
            self.metrics.jobs_in_flight.inc();
            let started = std::time::Instant::now();
            let end = self.run_inner(&message, attempt).await;
            self.metrics.job_seconds.observe(started.elapsed());
            self.metrics.jobs_in_flight.dec();
            match &end {
                JobEnd::Reported(JobOutcome::Completed { result, .. }) => {
                    self.metrics.job_ended("completed");
                    tracing::info!(
                        outcome = "completed",
                        bytes = result.file_size_bytes,
                        render_ms = result.render_duration_ms,
                        upload_ms = result.upload_duration_ms,
                        "job ended"
                    );
                }
                JobEnd::Reported(JobOutcome::Failed { error_message, .. }) => {
                    self.metrics.job_ended("failed");
                    tracing::info!(outcome = "failed", error = %error_message, "job ended");
                }
                JobEnd::Retry { reason, delay } => {
                    self.metrics.job_ended("retry");
                    tracing::warn!(outcome = "retry", %reason, ?delay, "job handed back");
                }
                JobEnd::Gone => {
                    tracing::info!(outcome = "gone", "the job already ended; nothing to do");
                }
            }
            end
        }
        .instrument(span)
        .await
    }

    async fn run_inner(&self, message: &RenderJobMessage, attempt: u32) -> JobEnd {
        let retry = |reason: &dyn std::fmt::Display| JobEnd::Retry {
            reason: reason.to_string(),
            delay: backoff(
                attempt,
                Duration::from_secs(2),
                Duration::from_secs(60),
                0.5 + jitter() / 2.0,
            ),
        };
        let spec = match &message.spec {
            Some(spec) => spec.clone(),
            None => match self.edge.spec(message).await {
                Ok(spec) => spec,
                Err(ServiceError::EdgeStatus(reqwest::StatusCode::NOT_FOUND)) => {
                    return JobEnd::Gone
                }
                Err(e) => return retry(&e),
            },
        };
        // `processing` need not hold up the render: both at once, one round trip to the edge
        // less per job. The render of a job that had ended meanwhile (rare: a repeated
        // delivery) is thrown away before anything is uploaded.
        let processing = JobEvent::Processing { at: now_timestamp() };
        let (reported, rendered) =
            tokio::join!(self.edge.report(message, &processing), self.engine.render(&spec));
        match reported {
            Ok(ack) if ack.status.is_terminal() => return JobEnd::Gone,
            Ok(_) => {}
            Err(e) => return retry(&e),
        }
        let rendered = match rendered {
            Ok(r) => {
                self.metrics.rendered(&r);
                r
            }
            Err(e) => {
                if e.retryable() && attempt < self.max_attempts {
                    return retry(&e);
                }
                tracing::warn!(error = %e, "render failed");
                return self.fail(message, format!("Render failed: {}", e.public_message())).await;
            }
        };
        match self.edge.report(message, &JobEvent::Uploading { at: now_timestamp() }).await {
            // Ended meanwhile (given up on, or done by another delivery): no second object.
            Ok(ack) if ack.status.is_terminal() => return JobEnd::Gone,
            Ok(_) => {}
            Err(e) => return retry(&e),
        }
        let size = rendered.pdf.len() as u64;
        let started = std::time::Instant::now();
        let uploaded = upload(
            &self.uploads,
            &message.upload_url,
            Bytes::from(rendered.pdf),
            self.upload_policy,
        )
        .await;
        let upload_time = started.elapsed();
        self.metrics.upload_seconds.observe(upload_time);
        if let Err(e) = uploaded {
            return self.fail(message, e.to_string()).await;
        }
        let result = RenderResult {
            file_size_bytes: size,
            render_duration_ms: rendered.duration.as_millis() as u64,
            upload_duration_ms: upload_time.as_millis() as u64,
        };
        let event = JobEvent::Completed { at: now_timestamp(), result };
        match self.edge.report(message, &event).await {
            Ok(_) => {
                JobEnd::Reported(JobOutcome::Completed { job_id: message.job_id.clone(), result })
            }
            Err(e) => retry(&e),
        }
    }

    async fn fail(&self, message: &RenderJobMessage, error_message: String) -> JobEnd {
        let event = JobEvent::Failed { at: now_timestamp(), error_message: error_message.clone() };
        match self.edge.report(message, &event).await {
            Ok(_) => JobEnd::Reported(JobOutcome::Failed {
                job_id: message.job_id.clone(),
                error_message,
            }),
            Err(e) => JobEnd::Retry { reason: e.to_string(), delay: Duration::from_secs(10) },
        }
    }
}
