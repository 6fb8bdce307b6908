//! Which consumer a queue's deliveries are for, by the queue's name, and what becomes of a
//! delivery the Worker cannot handle: the routing of `#[event(queue)]`, decided natively.

use crate::consumers::Verdict;

/// The queues this Worker consumes (`wrangler.toml`), by what their messages are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRoute {
    /// `render-jobs`: push mode's single jobs.
    RenderJobs,
    /// `render-batches`: push mode's batch documents, handed over together.
    RenderBatches,
    /// `render-jobs-dlq` (and any render queue's dead letters): every delivery of the job
    /// failed, so the job fails.
    RenderDeadLetters,
    /// `webhooks`: deliveries and their retries.
    Webhooks,
    /// `webhooks-dlq`: kept for an operator to replay.
    WebhookDeadLetters,
    /// A queue this Worker does not know: a binding named otherwise in `wrangler.toml`.
    Unknown,
}

/// The route of a delivery from the queue `name`. A name may carry a suffix (an
/// environment's `render-jobs-staging`); `-dlq` at the end marks dead letters.
pub fn queue_route(name: &str) -> QueueRoute {
    let dead = name.ends_with("-dlq");
    let is = |base: &str| {
        name.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    };
    match (is("render-jobs") || is("render-batches"), is("webhooks"), dead) {
        (true, _, true) => QueueRoute::RenderDeadLetters,
        (true, _, false) if is("render-batches") => QueueRoute::RenderBatches,
        (true, _, false) => QueueRoute::RenderJobs,
        (_, true, true) => QueueRoute::WebhookDeadLetters,
        (_, true, false) => QueueRoute::Webhooks,
        _ => QueueRoute::Unknown,
    }
}

/// What becomes of each message of a delivery from an [`QueueRoute::Unknown`] queue: it
/// comes back (the Worker logs why) until the operator names the queue right, or Queues moves
/// it to the queue's dead-letter queue after its retries. Never acknowledged unread.
pub fn unknown_queue() -> Verdict {
    Verdict::Retry { delay_secs: UNKNOWN_QUEUE_RETRY_SECS }
}

/// How long a delivery from an unknown queue waits to come back.
pub const UNKNOWN_QUEUE_RETRY_SECS: u32 = 300;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_queue_of_wrangler_toml_goes_to_its_consumer() {
        let routes = [
            ("render-jobs", QueueRoute::RenderJobs),
            ("render-batches", QueueRoute::RenderBatches),
            ("render-jobs-dlq", QueueRoute::RenderDeadLetters),
            ("render-batches-dlq", QueueRoute::RenderDeadLetters),
            ("webhooks", QueueRoute::Webhooks),
            ("webhooks-dlq", QueueRoute::WebhookDeadLetters),
            ("render-jobs-staging", QueueRoute::RenderJobs),
            ("webhooks-staging-dlq", QueueRoute::WebhookDeadLetters),
            ("render-jobsx", QueueRoute::Unknown),
            ("renders", QueueRoute::Unknown),
        ];
        for (name, route) in routes {
            assert_eq!(queue_route(name), route, "{name}");
        }
    }

    #[test]
    fn a_delivery_from_an_unknown_queue_comes_back_and_is_never_acknowledged_unread() {
        // Acknowledging it would drop every message of a misnamed queue without a trace.
        assert!(matches!(unknown_queue(), Verdict::Retry { delay_secs } if delay_secs > 0));
    }
}
