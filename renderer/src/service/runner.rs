//! Running one job to its end: spec, `processing` and the render at once, `uploading`,
//! upload, then `completed` or `failed`; nothing is uploaded before the edge has accepted
//! `uploading`.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tailpdf_shared::{
    job::RenderResult,
    messages::{JobOutcome, RenderJobMessage},
    trace::TraceParent,
    JobEvent, RenderSpec,
};
use tracing::Instrument;

use super::{
    edge::{now_timestamp, EdgeClient},
    error::ServiceError,
    metrics::Metrics,
    retry::{backoff, jitter},
    upload::{upload, UploadPolicy},
};
use crate::{
    engine::{
        schedule::{Lane, Requester},
        Engine, Rendered,
    },
    error::RenderError,
    net::GuardedFetcher,
};

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

/// A [`JobEnd::Retry`]'s delay as the edge is told it: whole seconds, at least one.
pub fn delay_secs(delay: Duration) -> u32 {
    u32::try_from(delay.as_secs().max(1)).unwrap_or(60)
}

pub struct Runner {
    pub(crate) engine: Engine,
    pub(crate) uploads: GuardedFetcher,
    pub(crate) upload_policy: UploadPolicy,
    pub(crate) edge: EdgeClient,
    pub(crate) max_attempts: u32,
    pub(crate) metrics: Arc<Metrics>,
    /// Documents of one batch printed together at most (`--group-size`).
    pub(crate) group_size: usize,
}

/// A job handed back to be delivered again after a backoff of its attempt.
fn retry(attempt: u32, reason: &dyn std::fmt::Display) -> JobEnd {
    JobEnd::Retry {
        reason: reason.to_string(),
        delay: backoff(
            attempt,
            Duration::from_secs(2),
            Duration::from_secs(60),
            0.5 + jitter() / 2.0,
        ),
    }
}

/// What the edge's answer to `processing` means for the job: go on, or stop here.
fn started(
    reported: Result<tailpdf_shared::messages::EventAck, ServiceError>,
    attempt: u32,
) -> Result<(), JobEnd> {
    match reported {
        Ok(ack) if ack.status.is_terminal() => Err(JobEnd::Gone),
        Ok(_) => Ok(()),
        Err(e) => Err(retry(attempt, &e)),
    }
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
            self.record(&end);
            end
        }
        .instrument(span)
        .await
    }

    async fn run_inner(&self, message: &RenderJobMessage, attempt: u32) -> JobEnd {
        let spec = match self.spec(message, attempt).await {
            Ok(spec) => spec,
            Err(end) => return end,
        };
        // `processing` need not hold up the render: both at once, one round trip to the edge
        // less per job. The render of a job that had ended meanwhile (rare: a repeated
        // delivery) is thrown away before anything is uploaded.
        let processing = JobEvent::Processing { at: now_timestamp() };
        let who = Requester::new(&message.account, Lane::Job);
        let (reported, rendered) = tokio::join!(
            self.edge.report(message, &processing),
            self.engine.render_for(&spec, &who)
        );
        if let Err(end) = started(reported, attempt) {
            return end;
        }
        self.deliver(message, attempt, rendered).await
    }

    /// Runs the jobs of a group, each delivery number `attempt` of its message: their
    /// documents printed together where they may be ([`crate::engine::group`]), in groups of
    /// at most `group_size`, never with documents of another batch; each job then uploaded and
    /// reported on its own. One end per job, in order.
    pub async fn run_group(&self, jobs: Vec<(RenderJobMessage, u32)>) -> Vec<JobEnd> {
        let span = tracing::info_span!("group", jobs = jobs.len());
        async move {
            self.metrics.jobs_in_flight.inc_by(jobs.len() as i64);
            let started_at = std::time::Instant::now();
            // Each job's spec and `processing` first, all at once.
            let begun = futures::future::join_all(jobs.iter().map(|(message, attempt)| async move {
                let spec = self.spec(message, *attempt).await?;
                let processing = JobEvent::Processing { at: now_timestamp() };
                started(self.edge.report(message, &processing).await, *attempt)?;
                Ok::<_, JobEnd>(spec)
            }))
            .await;
            let mut ends: Vec<Option<JobEnd>> = Vec::with_capacity(jobs.len());
            let mut printable: Vec<Vec<(usize, RenderSpec)>> = Vec::new();
            let mut batch_of: Vec<(Option<&tailpdf_shared::JobId>, &str)> = Vec::new();
            for (i, ((message, _), begun)) in jobs.iter().zip(begun).enumerate() {
                match begun {
                    Err(end) => ends.push(Some(end)),
                    Ok(spec) => {
                        ends.push(None);
                        // Documents of different batches (or accounts) never share a page.
                        let key = (message.batch.as_ref().map(|b| &b.batch_id), message.account.as_str());
                        let at = batch_of.iter().position(|k| *k == key).unwrap_or_else(|| {
                            batch_of.push(key);
                            printable.push(Vec::new());
                            batch_of.len() - 1
                        });
                        printable[at].push((i, spec));
                    }
                }
            }
            let size = self.group_size.max(1);
            // Each group as its batch's account's, in the batch lane.
            let groups: Vec<_> = printable
                .iter()
                .zip(&batch_of)
                .flat_map(|(docs, (_, account))| {
                    docs.chunks(size).map(|chunk| (chunk, Requester::new(account, Lane::Batch)))
                })
                .collect();
            let rendered = futures::future::join_all(groups.iter().map(|(group, who)| async move {
                let specs: Vec<RenderSpec> = group.iter().map(|(_, s)| s.clone()).collect();
                let results = self.engine.render_group_for(&specs, who).await;
                group.iter().map(|(i, _)| *i).zip(results).collect::<Vec<_>>()
            }))
            .await;
            let delivered = futures::future::join_all(rendered.into_iter().flatten().map(|(i, rendered)| {
                let (message, attempt) = &jobs[i];
                async move { (i, self.deliver(message, *attempt, rendered).await) }
            }))
            .await;
            for (i, end) in delivered {
                ends[i] = Some(end);
            }
            let ends: Vec<JobEnd> = ends
                .into_iter()
                .map(|e| e.unwrap_or_else(|| JobEnd::Retry { reason: String::from("not run"), delay: Duration::from_secs(2) }))
                .collect();
            self.metrics.jobs_in_flight.dec_by(jobs.len() as i64);
            for ((message, attempt), end) in jobs.iter().zip(&ends) {
                self.metrics.job_seconds.observe(started_at.elapsed());
                let _job = tracing::info_span!("job", job_id = %message.job_id, account = %message.account, attempt).entered();
                self.record(end);
            }
            ends
        }
        .instrument(span)
        .await
    }

    /// The job's spec: in its message, or fetched from the edge.
    async fn spec(&self, message: &RenderJobMessage, attempt: u32) -> Result<RenderSpec, JobEnd> {
        match &message.spec {
            Some(spec) => Ok(spec.clone()),
            None => match self.edge.spec(message).await {
                Ok(spec) => Ok(spec),
                Err(ServiceError::EdgeStatus(reqwest::StatusCode::NOT_FOUND)) => Err(JobEnd::Gone),
                Err(e) => Err(retry(attempt, &e)),
            },
        }
    }

    /// After the render: failed (or retried), or uploaded and completed.
    async fn deliver(
        &self,
        message: &RenderJobMessage,
        attempt: u32,
        rendered: Result<Rendered, RenderError>,
    ) -> JobEnd {
        let rendered = match rendered {
            Ok(r) => {
                self.metrics.rendered(&r);
                r
            }
            Err(e) => {
                if e.retryable() && attempt < self.max_attempts {
                    return retry(attempt, &e);
                }
                tracing::warn!(job_id = %message.job_id, error = %e, "render failed");
                return self.fail(message, format!("Render failed: {}", e.public_message())).await;
            }
        };
        match self.edge.report(message, &JobEvent::Uploading { at: now_timestamp() }).await {
            // Ended meanwhile (given up on, or done by another delivery): no second object.
            Ok(ack) if ack.status.is_terminal() => return JobEnd::Gone,
            Ok(_) => {}
            Err(e) => return retry(attempt, &e),
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
            Err(e) => retry(attempt, &e),
        }
    }

    /// The job's end in the metrics and the log (within the job's span).
    fn record(&self, end: &JobEnd) {
        match end {
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
