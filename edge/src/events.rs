//! What the renderer's events do to a job, single or a batch's document: each moves the job
//! forward through the shared state machine, once; the one that ends it queues its one
//! webhook, frees its slot and reports to its batch.

use tailpdf_shared::{
    limits::JOB_TTL_OPEN_SECS,
    messages::{EventAck, WebhookMessage},
    webhook::WebhookPayload,
    ApiError, JobEvent, JobId, Timestamp,
};

use crate::{
    config::EdgeConfig,
    error::EdgeError,
    limits::{LimitRequest, Limiter},
    store::{
        job_key, load_job, put_json, spec_key, stage_key, webhook_queued_key, Kv, Queue, StoredJob,
        WebhookRecord,
    },
};

/// `POST /internal/jobs/{id}/events`: moves the job forward through the shared state machine.
/// A repeated or late event is acknowledged and changes nothing; the event that ends the job
/// queues its one webhook.
pub async fn apply_event(
    jobs: &impl Kv,
    webhooks: &impl Queue<WebhookMessage>,
    limiter: &impl Limiter,
    cfg: &EdgeConfig,
    id: &str,
    body: &[u8],
) -> Result<EventAck, EdgeError> {
    let (id, event) = parse_event(id, body)?;
    apply(jobs, webhooks, limiter, cfg, &id, &event).await
}

/// The job and the event of `POST /internal/jobs/{id}/events`.
pub fn parse_event(id: &str, body: &[u8]) -> Result<(JobId, JobEvent), EdgeError> {
    let id = JobId::parse(id).map_err(|_| EdgeError::Unknown("No such job.".into()))?;
    let event: JobEvent = serde_json::from_slice(body)
        .map_err(|e| ApiError::validation(format!("The event is not valid: {e}.")))?;
    Ok((id, event))
}

/// Why a job the render-jobs queue dead-lettered failed: every delivery to a renderer failed.
pub const GAVE_UP_MESSAGE: &str =
    "Render failed: no renderer could complete the job after repeated attempts; submit it again.";

/// The end of a job whose every delivery failed: a render-jobs message that reached the
/// dead-letter queue fails its job (with its render.failed webhook) by this event, instead of
/// leaving it pending or processing until it expires. A job that already ended is left as it
/// is (the state machine).
pub fn gave_up(now: Timestamp) -> JobEvent {
    JobEvent::Failed { at: now, error_message: GAVE_UP_MESSAGE.to_owned() }
}

/// Moves the job forward by `event` through the shared state machine; the event that ends the
/// job queues its one webhook and frees its slot among the account's jobs in flight.
pub(crate) async fn apply(
    jobs: &impl Kv,
    webhooks: &impl Queue<WebhookMessage>,
    limiter: &impl Limiter,
    cfg: &EdgeConfig,
    id: &JobId,
    event: &JobEvent,
) -> Result<EventAck, EdgeError> {
    let Some(mut job) = load_job(jobs, id, WebhookRecord::Skip).await? else {
        return Err(EdgeError::Unknown("No such job (expired?).".into()));
    };
    let transition = job.record.apply(event);
    if transition.is_applied() {
        let ends = transition.ends_job();
        let ttl = if ends { cfg.job_ttl_done_secs } else { JOB_TTL_OPEN_SECS };
        put_json(jobs, &stage_key(id, event.status()), event, ttl).await?;
        if ends {
            // The job is readable for the ended-job TTL from now on.
            put_json(jobs, &job_key(id), &job.base, cfg.job_ttl_done_secs).await?;
        }
    }
    // The event that ended the job queues its webhook. The same event again (the renderer
    // repeats an event whose answer it did not get, e.g. because queueing failed) queues it if
    // that never happened: one webhook per job, whichever call got through.
    let ended_by_this = job.record.status.is_terminal() && job.record.status == event.status();
    if ended_by_this {
        queue_webhook_once(jobs, webhooks, cfg, &job).await?;
    }
    // Also on a repeated end: the delete may have failed the first time.
    if job.record.status.is_terminal() && job.base.spec_stored {
        jobs.delete(&spec_key(id)).await?;
    }
    // A batch's document: its state goes to the batch's progress, repeats included (the
    // report is idempotent, and the first may have failed); an error here is a 503, so the
    // event comes again until the batch has heard it.
    if let Some(batch) = &job.base.batch {
        crate::batches::report(jobs, webhooks, limiter, cfg, &job, batch, ended_by_this).await?;
    }
    if ended_by_this && job.base.holds_slot {
        // Best effort: a slot whose end is lost expires (limits::SLOT_TTL_MS).
        let end = LimitRequest::EndJob { job_id: id.clone() };
        let _ = limiter.ask(&job.base.account, &end).await;
    }
    Ok(EventAck { applied: transition.is_applied(), status: job.record.status })
}

/// Queues the webhook of the job's end unless it was queued before
/// (`job:{id}:webhook_queued:{event}`).
async fn queue_webhook_once(
    jobs: &impl Kv,
    webhooks: &impl Queue<WebhookMessage>,
    cfg: &EdgeConfig,
    job: &StoredJob,
) -> Result<(), EdgeError> {
    let (Some(url), Some(payload)) = (&job.base.webhook_url, WebhookPayload::for_job(&job.record))
    else {
        return Ok(());
    };
    let marker = webhook_queued_key(&job.base.job_id, payload.event);
    if jobs.get(&marker).await?.is_some() {
        return Ok(());
    }
    let message = WebhookMessage {
        account: job.base.account.clone(),
        url: url.clone(),
        payload: payload.into(),
        attempt: 0,
    };
    webhooks.send(&message).await?;
    put_json(jobs, &marker, &true, cfg.job_ttl_done_secs).await?;
    Ok(())
}
