//! Webhook delivery: the request for one attempt, and what follows from its answer.
//!
//! Every attempt of one event sends the same body with the same `webhook-id` (derived from the
//! job and the event), a fresh `webhook-timestamp` and signatures over them. A non-2xx answer
//! (a redirect among them) or a timeout is retried with growing delays; after the last, the
//! message is dead-lettered.

use tailpdf_shared::{
    job::WebhookDelivery, messages::WebhookMessage, webhook::delivery_headers, Timestamp,
};

/// One delivery attempt, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRequest {
    pub url: String,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

pub fn request(message: &WebhookMessage, secret: Option<&str>, now: i64) -> DeliveryRequest {
    let body = message.payload.to_body();
    let headers = delivery_headers(
        message.payload.event(),
        &message.payload.webhook_id(),
        &body,
        secret,
        now,
    );
    DeliveryRequest { url: message.url.expose().to_owned(), body, headers }
}

/// What to do with the queue message after attempt number `attempt` (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered: acknowledge.
    Done,
    /// Deliver again after this many seconds.
    Retry { delay_secs: u32 },
    /// The retries are spent: send it to the dead-letter queue.
    DeadLetter,
}

/// `status` is the receiver's HTTP status, `None` when it did not answer in time.
pub fn next(status: Option<u16>, attempt: u32, delays: &[u32]) -> Next {
    if status.is_some_and(|s| (200..300).contains(&s)) {
        return Next::Done;
    }
    match delays.get(attempt.saturating_sub(1) as usize) {
        Some(&delay_secs) => Next::Retry { delay_secs },
        None => Next::DeadLetter,
    }
}

/// The job's `webhook` object after attempt number `attempt` (from 1, as the message counts
/// it): a 2xx is a delivery; anything else (a redirect too) is not.
pub fn record(attempt: u32, status: Option<u16>, now: Timestamp) -> WebhookDelivery {
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    WebhookDelivery {
        attempts: attempt,
        last_status: status,
        delivered_at: delivered.then_some(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tailpdf_shared::{
        job::{JobRecord, RenderResult},
        messages::SecretUrl,
        signing::{verify_tailpdf_signature, StandardWebhookKey},
        webhook::WebhookPayload,
        JobEvent, JobId,
    };

    fn message() -> WebhookMessage {
        let mut job = JobRecord::new(
            JobId::parse("01JFXYZ123456789ABCDEFGH").unwrap(),
            "a",
            Timestamp::from_unix(100).unwrap(),
        );
        job.apply(&JobEvent::Completed {
            at: Timestamp::from_unix(102).unwrap(),
            result: RenderResult {
                file_size_bytes: 1,
                render_duration_ms: 2,
                upload_duration_ms: 3,
            },
        });
        WebhookMessage {
            account: "a".into(),
            url: SecretUrl::new("https://h.example/hook"),
            payload: WebhookPayload::for_job(&job).unwrap().into(),
            attempt: 0,
        }
    }

    fn header<'a>(r: &'a DeliveryRequest, name: &str) -> &'a str {
        &r.headers.iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn every_attempt_carries_the_same_id_and_body_and_verifiable_signatures() {
        let first = request(&message(), Some("sec"), 1_000);
        let later = request(&message(), Some("sec"), 1_600);
        assert_eq!(first.body, later.body);
        assert_eq!(header(&first, "webhook-id"), header(&later, "webhook-id"));
        assert_eq!(header(&first, "webhook-id"), "msg_01JFXYZ123456789ABCDEFGH_completed");
        assert_ne!(header(&first, "webhook-timestamp"), header(&later, "webhook-timestamp"));
        assert!(verify_tailpdf_signature(
            "sec",
            later.body.as_bytes(),
            header(&later, "X-TailPDF-Signature")
        )
        .is_ok());
        let key = StandardWebhookKey::from_secret("sec");
        let id = header(&later, "webhook-id");
        assert!(key
            .verify(id, "1600", header(&later, "webhook-signature"), later.body.as_bytes(), 1_600)
            .is_ok());
        assert_eq!(header(&first, "User-Agent"), "TailPDF-Webhook/1.0");
        assert_eq!(header(&first, "X-TailPDF-Event"), "render.completed");
    }

    #[test]
    fn retries_follow_the_schedule_then_dead_letter() {
        let delays = [5, 30, 120];
        assert_eq!(next(Some(200), 1, &delays), Next::Done);
        assert_eq!(next(Some(204), 4, &delays), Next::Done);
        assert_eq!(next(Some(500), 1, &delays), Next::Retry { delay_secs: 5 });
        assert_eq!(next(None, 2, &delays), Next::Retry { delay_secs: 30 });
        assert_eq!(next(Some(404), 3, &delays), Next::Retry { delay_secs: 120 });
        assert_eq!(next(Some(500), 4, &delays), Next::DeadLetter);
    }

    #[test]
    fn the_webhook_object_counts_attempts() {
        let t = Timestamp::from_unix(50).unwrap();
        let a = record(1, Some(500), t);
        assert_eq!((a.attempts, a.last_status, a.delivered_at), (1, Some(500), None));
        let b = record(2, Some(307), t);
        assert_eq!((b.attempts, b.last_status, b.delivered_at), (2, Some(307), None));
        let c = record(3, None, t);
        assert_eq!((c.attempts, c.last_status), (3, None));
        let d = record(4, Some(200), t);
        assert_eq!((d.attempts, d.delivered_at), (4, Some(t)));
    }
}
