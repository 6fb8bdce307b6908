//! Webhooks whose every retry failed: kept, listed and replayed.
//!
//! The `webhooks-dlq` consumer keeps each dead-lettered delivery in `JOBS` at
//! `dead:{webhook-id}` for `DEAD_LETTER_TTL_SECS` (7 days by default). An operator lists them
//! (`GET /internal/dead-letters`) and, once the receiver is back, replays chosen ones
//! (`POST /internal/dead-letters/replay`): each goes back to the `webhooks` queue as it was,
//! same `webhook-id` and body, and gets one more attempt (a failure dead-letters it again),
//! recorded in the job's `webhook` object like any attempt. Both endpoints are signed with
//! `ADMIN_SECRET` (`tailpdf-admin dead-letters …`), which no renderer holds.

use serde::{Deserialize, Serialize};
use tailpdf_shared::{messages::WebhookMessage, ApiError, Timestamp};

use crate::error::EdgeError;
use crate::store::{
    dead_letter_key, get_json, put_json, Kv, Queue, StoreError, DEAD_LETTER_PREFIX,
};

/// A dead-lettered delivery as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub message: WebhookMessage,
    pub dead_at: Timestamp,
}

/// What the list shows of one: no secret, and the URL without its query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterView {
    pub webhook_id: String,
    pub account: String,
    /// The job's id; for `batch.completed`, the batch's.
    pub job_id: String,
    pub event: String,
    pub url: String,
    pub attempts: u32,
    pub dead_at: Timestamp,
}

/// `POST /internal/dead-letters/replay`'s body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayRequest {
    pub webhook_ids: Vec<String>,
}

/// Its answer: which went back to the queue, and which were not there (replayed before, or
/// expired).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayOutcome {
    pub replayed: Vec<String>,
    pub not_found: Vec<String>,
}

/// The `webhooks-dlq` consumer: keeps `message`.
pub async fn keep(
    jobs: &impl Kv,
    message: &WebhookMessage,
    now: Timestamp,
    ttl_secs: u64,
) -> Result<(), StoreError> {
    let letter = DeadLetter { message: message.clone(), dead_at: now };
    put_json(jobs, &dead_letter_key(&message.payload.webhook_id()), &letter, ttl_secs).await
}

/// `GET /internal/dead-letters`: every kept delivery, oldest first.
pub async fn list(jobs: &impl Kv) -> Result<Vec<DeadLetterView>, EdgeError> {
    let mut views = Vec::new();
    for key in jobs.list(DEAD_LETTER_PREFIX).await? {
        // Expired or replayed since the listing: not shown.
        let Some(letter) = get_json::<DeadLetter>(jobs, &key).await? else { continue };
        let m = &letter.message;
        views.push(DeadLetterView {
            webhook_id: m.payload.webhook_id(),
            account: m.account.clone(),
            job_id: m.payload.subject().to_string(),
            event: m.payload.event().as_str().to_owned(),
            url: m.url.to_string(),
            attempts: m.attempt,
            dead_at: letter.dead_at,
        });
    }
    views.sort_by(|a, b| (a.dead_at, &a.webhook_id).cmp(&(b.dead_at, &b.webhook_id)));
    Ok(views)
}

/// `POST /internal/dead-letters/replay`: each chosen delivery back to `webhooks`, then out of
/// the kept ones (queued first: a failure in between replays it twice at worst, with the same
/// `webhook-id`, which receivers deduplicate).
pub async fn replay(
    jobs: &impl Kv,
    webhooks: &impl Queue<WebhookMessage>,
    body: &[u8],
) -> Result<ReplayOutcome, EdgeError> {
    let request: ReplayRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(format!("The body must be {{\"webhook_ids\": [...]}}: {e}."))
    })?;
    let mut outcome = ReplayOutcome::default();
    for id in request.webhook_ids {
        let key = dead_letter_key(&id);
        match get_json::<DeadLetter>(jobs, &key).await? {
            Some(letter) => {
                webhooks.send(&letter.message).await?;
                jobs.delete(&key).await?;
                outcome.replayed.push(id);
            }
            None => outcome.not_found.push(id),
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        jobs::tests::{run, ts},
        store::memory::{MemoryKv, MemoryQueue},
    };
    use tailpdf_shared::{
        job::JobRecord, messages::SecretUrl, webhook::WebhookPayload, JobEvent, JobId,
    };

    fn hook(n: u128) -> WebhookMessage {
        let mut job = JobRecord::new(JobId::from_parts(1_734_258_600_000, n), "acme", ts(0));
        job.apply(&JobEvent::Failed { at: ts(1), error_message: "x".into() });
        WebhookMessage {
            account: "acme".into(),
            url: SecretUrl::new("https://hooks.example.com/in?token=s3cret"),
            payload: WebhookPayload::for_job(&job).unwrap().into(),
            attempt: 8,
        }
    }

    #[test]
    fn kept_listed_without_secrets_and_replayed_once_as_they_were() {
        run(async {
            let (jobs, webhooks) = (MemoryKv::default(), MemoryQueue::default());
            keep(&jobs, &hook(2), ts(20), 604_800).await.unwrap();
            keep(&jobs, &hook(1), ts(10), 604_800).await.unwrap();
            let listed = list(&jobs).await.unwrap();
            assert_eq!(listed.len(), 2);
            assert_eq!(listed[0].webhook_id, hook(1).payload.webhook_id(), "oldest first");
            assert_eq!((listed[0].attempts, listed[0].event.as_str()), (8, "render.failed"));
            let text = serde_json::to_string(&listed).unwrap();
            assert!(!text.contains("s3cret") && text.contains("hooks.example.com"), "{text}");
            assert_eq!(jobs.ttl(&format!("dead:{}", listed[0].webhook_id)), Some(604_800));

            let ids = vec![listed[0].webhook_id.clone(), String::from("msg_unknown")];
            let body = serde_json::to_vec(&ReplayRequest { webhook_ids: ids }).unwrap();
            let outcome = replay(&jobs, &webhooks, &body).await.unwrap();
            assert_eq!(outcome.replayed, [hook(1).payload.webhook_id()]);
            assert_eq!(outcome.not_found, ["msg_unknown"]);
            assert_eq!(webhooks.0.borrow().as_slice(), [hook(1)], "the same message, same count");
            let again = replay(&jobs, &webhooks, &body).await.unwrap();
            assert_eq!(again.replayed.len(), 0, "replayed once");
            assert_eq!(list(&jobs).await.unwrap().len(), 1);
        });
    }

    #[test]
    fn a_bad_body_is_400_and_a_failed_queue_keeps_the_letter() {
        run(async {
            let jobs = MemoryKv::default();
            assert_eq!(
                replay(&jobs, &MemoryQueue::default(), b"{}").await.unwrap_err().status(),
                400
            );
            keep(&jobs, &hook(1), ts(10), 60).await.unwrap();
            let body = format!(r#"{{"webhook_ids":["{}"]}}"#, hook(1).payload.webhook_id());
            let e = replay(&jobs, &MemoryQueue::failing(), body.as_bytes()).await.unwrap_err();
            assert_eq!(e.status(), 503);
            assert_eq!(list(&jobs).await.unwrap().len(), 1, "still kept");
        });
    }
}
