//! Every key name the edge and `tailpdf-admin` use, in one place (the layout is in
//! [`super`]'s table).

use tailpdf_shared::{webhook::WebhookEvent, JobId, JobStatus};

/// Every job's keys start with this, then its id.
pub const JOB_PREFIX: &str = "job:";

/// An API key's record ([`super::Account`]) in `API_KEYS`, by the key's SHA-256 (hex).
pub fn api_key_key(hash: &str) -> String {
    format!("{API_KEY_PREFIX}{hash}")
}

/// What every API key's record starts with.
pub const API_KEY_PREFIX: &str = "key:";

/// An account's record in `API_KEYS`: its webhook secret and limits.
pub fn account_key(name: &str) -> String {
    format!("account:{name}")
}

/// A dead-lettered webhook delivery ([`crate::dead_letters`]).
pub fn dead_letter_key(webhook_id: &str) -> String {
    format!("{DEAD_LETTER_PREFIX}{webhook_id}")
}

/// What every dead letter's key starts with.
pub const DEAD_LETTER_PREFIX: &str = "dead:";

/// A job's base ([`super::JobBase`]), and when it ended its whole record.
pub fn job_key(id: &JobId) -> String {
    format!("{JOB_PREFIX}{id}")
}

/// A job's spec when too large for its queue message.
pub fn spec_key(id: &JobId) -> String {
    format!("job:{id}:spec")
}

/// The key of the stage an event records.
pub fn stage_key(id: &JobId, status: JobStatus) -> String {
    match status {
        JobStatus::Pending => job_key(id),
        JobStatus::Processing => format!("job:{id}:processing"),
        JobStatus::Uploading => format!("job:{id}:uploading"),
        JobStatus::Completed | JobStatus::Failed => format!("job:{id}:end"),
    }
}

/// Its webhook's delivery status.
pub fn webhook_key(id: &JobId) -> String {
    format!("job:{id}:webhook")
}

/// Marks one end's webhook as queued: per end, since two different ends may race and the
/// webhook of the one stored last must be queued too.
pub fn webhook_queued_key(id: &JobId, event: WebhookEvent) -> String {
    format!("job:{id}:webhook_queued:{}", event.as_str())
}

/// Every batch's keys start with this, then its id.
pub const BATCH_PREFIX: &str = "batch:";

/// A batch's record ([`super::BatchRecord`]).
pub fn batch_key(id: &JobId) -> String {
    format!("{BATCH_PREFIX}{id}")
}

/// The pack of documents `pack × SPECS_PER_PACK ..`.
pub fn specs_key(id: &JobId, pack: u32) -> String {
    format!("batch:{id}:specs:{pack}")
}

/// Marks `batch.completed` as queued.
pub fn batch_webhook_queued_key(id: &JobId) -> String {
    format!("batch:{id}:webhook_queued")
}
