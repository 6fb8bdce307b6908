//! The records the edge keeps (and `tailpdf-admin` writes): accounts and their limits, jobs'
//! bases, batches and their packs of specs.

use std::{collections::BTreeMap, ops::Range};

use serde::{Deserialize, Serialize};
use tailpdf_shared::{
    batch::{document_job_id, DocumentPart},
    messages::{BatchRef, SecretUrl},
    JobId, JobRecord, RenderSpec, Timestamp,
};

/// An account, found by its API key's hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// Its own limits; the Worker's defaults for those not set.
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: Limits,
}

fn is_default(limits: &Limits) -> bool {
    *limits == Limits::default()
}

/// What is known of a job from its submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobBase {
    pub job_id: JobId,
    pub account: String,
    pub created_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<SecretUrl>,
    /// The spec did not fit in the queue message and is kept at `job:{id}:spec` until the job
    /// ends.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spec_stored: bool,
    /// The job took a slot among its account's jobs in flight (crate::limits): its end frees
    /// it. Jobs of accounts without that limit never ask the counters.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub holds_slot: bool,
    /// A batch's document whose range of documents keeps specs in a pack
    /// ([`crate::store::specs_key`]), its own or its neighbours': the last of them to end
    /// deletes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spec_pack: bool,
    /// The batch the job is a document of: its moves are reported to the batch's progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchRef>,
}

/// An account's limits: set in its KV record, else the Worker's defaults (`EdgeConfig`).
/// 0 is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `POST /pdf` requests per minute, sync or async, in bursts of up to as many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Async jobs accepted and not yet ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_in_flight: Option<u32>,
}

impl Limits {
    /// These limits where set, `defaults` elsewhere.
    pub fn or(self, defaults: Limits) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute.or(defaults.requests_per_minute),
            jobs_in_flight: self.jobs_in_flight.or(defaults.jobs_in_flight),
        }
    }
}

/// A job and what its keys hold, assembled through the shared state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredJob {
    pub base: JobBase,
    pub record: JobRecord,
}

/// Whether [`super::load_job`] reads the webhook delivery record too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookRecord {
    /// For GET /jobs, which shows it.
    Read,
    /// For the state machine, which never looks at it: one KV read less per event.
    Skip,
}

/// Documents `n × SPECS_PER_PACK` up to the next multiple share the pack `batch:{id}:specs:{n}`:
/// at most 125 packs for 1,000 documents, each at most 8 contents under
/// [`crate::batches::OWN_SPEC_MIN_CONTENT_BYTES`] with their metadata, and the shared parts once (under 20 MiB
/// at worst; KV takes 25 MiB a value).
pub const SPECS_PER_PACK: u32 = 8;

/// A batch as kept at `batch:{id}` for 24 h.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub batch_id: JobId,
    pub account: String,
    pub created_at: Timestamp,
    /// Where `batch.completed` goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<SecretUrl>,
    /// What each document's job has of its own, in the order of `documents`; their ids are
    /// [`document_job_id`]s. A few bytes a document, at most 8 KB more with its webhook URL.
    pub documents: Vec<BatchDocument>,
}

/// One document of a [`BatchRecord`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchDocument {
    /// Where its `render.*` webhook goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<SecretUrl>,
    /// Its spec is at `job:{id}:spec`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spec_stored: bool,
    /// Its part is in its range's pack.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spec_packed: bool,
}

impl BatchRecord {
    /// The documents' job ids, in order.
    pub fn job_ids(&self) -> Vec<JobId> {
        (0..)
            .zip(&self.documents)
            .filter_map(|(index, _)| document_job_id(&self.batch_id, index))
            .collect()
    }

    /// What is known of document `index`'s job from the submission, as `job:{id}` would hold
    /// it; `None` past the last document.
    pub fn job_base(&self, index: u32) -> Option<JobBase> {
        let document = self.documents.get(usize::try_from(index).ok()?)?;
        let range = pack_range(index / SPECS_PER_PACK, self.documents.len());
        Some(JobBase {
            job_id: document_job_id(&self.batch_id, index)?,
            account: self.account.clone(),
            created_at: self.created_at,
            webhook_url: document.webhook_url.clone(),
            spec_stored: document.spec_stored,
            spec_pack: self.documents[range].iter().any(|d| d.spec_packed),
            holds_slot: false,
            batch: Some(BatchRef { batch_id: self.batch_id.clone(), index }),
        })
    }
}

/// The documents of pack `pack` in a batch of `total`.
pub fn pack_range(pack: u32, total: usize) -> Range<usize> {
    let per_pack = SPECS_PER_PACK as usize;
    let start = usize::try_from(pack).map_or(total, |p| p.saturating_mul(per_pack)).min(total);
    start..start.saturating_add(per_pack).min(total)
}

/// The specs of a range of documents that are too large for their messages: the shared parts
/// once, and each document's part by index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecPack {
    pub shared: RenderSpec,
    pub documents: BTreeMap<u32, DocumentPart>,
}

impl SpecPack {
    /// Document `index`'s whole spec, when it is in this pack.
    pub fn spec(&self, index: u32) -> Option<RenderSpec> {
        self.documents.get(&index).map(|part| part.spec(&self.shared))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_s_limits_fall_back_to_the_defaults_one_by_one() {
        let defaults = Limits { requests_per_minute: Some(600), jobs_in_flight: Some(50) };
        let own = Limits { requests_per_minute: Some(0), jobs_in_flight: None };
        assert_eq!(
            own.or(defaults),
            Limits { requests_per_minute: Some(0), jobs_in_flight: Some(50) }
        );
        let record: Limits = serde_json::from_str(r#"{"jobs_in_flight":3}"#).unwrap();
        assert_eq!(record, Limits { requests_per_minute: None, jobs_in_flight: Some(3) });
    }
}
