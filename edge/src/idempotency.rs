//! `Idempotency-Key`, exact across locations. Each account's keys are kept by its object (the
//! `LIMITS` Durable Object, the account's one writer: one request at a time, storage read
//! back at once wherever the call came from). A KV record, read then written, let the same key
//! sent to two locations (or twice at once) make two jobs: KV shows a write elsewhere up to a
//! minute late (issue 29).
//!
//! A request claims its key before it makes anything, and commits the claim once what it made
//! is queued; one that made nothing releases it. A claim not committed within [`CLAIM_MS`] (its
//! Worker died) lapses, and the key may be claimed again. While a claim stands, the same key
//! is answered "in progress" (409 with `Retry-After`); once committed, for a day, a replay.
//!
//! [`decide`] is the rule, plain; the object stores [`Entry`]s (limiter_object.rs), the native
//! tests a map (limits::tests::MemoryLimiter).

use serde::{Deserialize, Serialize};
use tailpdf_shared::JobId;

/// What an `Idempotency-Key` made: a job (`POST /pdf`) or a batch (`POST /pdf/batch`); one
/// key space for both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<JobId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<JobId>,
    /// A batch's number of documents: its jobs' ids follow from it and the batch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_documents: Option<u32>,
    /// sha256 of the request body: the same key with another body is a conflict.
    pub body_sha256: String,
}

/// How long a claim stands uncommitted: longer than a submit takes (its KV writes and queue
/// sends), short enough that a client's retry after a Worker died gets through.
pub const CLAIM_MS: u64 = 60_000;
/// How long a committed key replays what it made (as long as a pending job is kept).
pub const KEPT_MS: u64 = tailpdf_shared::limits::JOB_TTL_OPEN_SECS * 1000;

/// What the edge asks an account's object about one key (its sha256, never the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum IdempotencyRequest {
    /// Claims the key for `record` (what this request is about to make).
    Claim { key_sha256: String, record: IdempotencyRecord },
    /// `record` was made: replays get it from now on.
    Commit { key_sha256: String, record: IdempotencyRecord },
    /// Nothing was made: the claim for `record` is withdrawn.
    Release { key_sha256: String, record: IdempotencyRecord },
}

impl IdempotencyRequest {
    pub fn key_sha256(&self) -> &str {
        match self {
            Self::Claim { key_sha256, .. }
            | Self::Commit { key_sha256, .. }
            | Self::Release { key_sha256, .. } => key_sha256,
        }
    }

    /// The release of this request's key and record.
    pub fn released(&self) -> Self {
        let (Self::Claim { key_sha256, record }
        | Self::Commit { key_sha256, record }
        | Self::Release { key_sha256, record }) = self;
        Self::Release { key_sha256: key_sha256.clone(), record: record.clone() }
    }
}

/// The object's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IdempotencyAnswer {
    /// The key is this request's now.
    Claimed,
    /// The key made `record` before (its body may differ from this request's: a conflict).
    Seen { record: IdempotencyRecord },
    /// Another request with this key is being handled (by this body, or another).
    InProgress { body_sha256: String },
    /// Committed or released (or nothing left to do).
    Done,
}

/// What the object keeps for a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub record: IdempotencyRecord,
    pub committed: bool,
    pub expires_ms: u64,
}

/// What becomes of a key's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Keep,
    Put(Entry),
    Delete,
}

/// The rule: `request` against the key's `entry` (an expired one is as none) at `now_ms`.
pub fn decide(
    entry: Option<&Entry>,
    request: &IdempotencyRequest,
    now_ms: u64,
) -> (IdempotencyAnswer, Change) {
    let live = entry.filter(|e| e.expires_ms > now_ms);
    match request {
        IdempotencyRequest::Claim { record, .. } => match live {
            Some(e) if e.committed => {
                (IdempotencyAnswer::Seen { record: e.record.clone() }, Change::Keep)
            }
            Some(e) => (
                IdempotencyAnswer::InProgress { body_sha256: e.record.body_sha256.clone() },
                Change::Keep,
            ),
            None => {
                let claim = Entry {
                    record: record.clone(),
                    committed: false,
                    expires_ms: now_ms + CLAIM_MS,
                };
                (IdempotencyAnswer::Claimed, Change::Put(claim))
            }
        },
        IdempotencyRequest::Commit { record, .. } => match live {
            // Its claim, or (it lapsed) none at all: the key replays this from now on.
            Some(e) if e.record == *record && !e.committed => {
                let kept =
                    Entry { record: record.clone(), committed: true, expires_ms: now_ms + KEPT_MS };
                (IdempotencyAnswer::Done, Change::Put(kept))
            }
            None => {
                let kept =
                    Entry { record: record.clone(), committed: true, expires_ms: now_ms + KEPT_MS };
                (IdempotencyAnswer::Done, Change::Put(kept))
            }
            // Its claim lapsed and another request's took the key: that one's stands.
            Some(_) => (IdempotencyAnswer::Done, Change::Keep),
        },
        IdempotencyRequest::Release { record, .. } => match live {
            Some(e) if e.record == *record && !e.committed => {
                (IdempotencyAnswer::Done, Change::Delete)
            }
            _ => (IdempotencyAnswer::Done, Change::Keep),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64, body: &str) -> IdempotencyRecord {
        IdempotencyRecord {
            job_id: Some(JobId::from_parts(1_764_230_000_000, u128::from(n))),
            body_sha256: body.into(),
            ..IdempotencyRecord::default()
        }
    }

    fn claim(r: &IdempotencyRecord) -> IdempotencyRequest {
        IdempotencyRequest::Claim { key_sha256: "k".into(), record: r.clone() }
    }

    /// Applies `request` to `entry` as the object would.
    fn apply(
        entry: &mut Option<Entry>,
        request: &IdempotencyRequest,
        now: u64,
    ) -> IdempotencyAnswer {
        let (answer, change) = decide(entry.as_ref(), request, now);
        match change {
            Change::Keep => {}
            Change::Put(e) => *entry = Some(e),
            Change::Delete => *entry = None,
        }
        answer
    }

    #[test]
    fn a_key_is_claimed_once_committed_and_replayed_for_a_day() {
        let (first, second) = (record(1, "body"), record(2, "body"));
        let mut entry = None;
        assert_eq!(apply(&mut entry, &claim(&first), 0), IdempotencyAnswer::Claimed);
        let in_progress = IdempotencyAnswer::InProgress { body_sha256: "body".into() };
        assert_eq!(apply(&mut entry, &claim(&second), 10), in_progress, "one claim at a time");
        let commit = IdempotencyRequest::Commit { key_sha256: "k".into(), record: first.clone() };
        assert_eq!(apply(&mut entry, &commit, 20), IdempotencyAnswer::Done);
        let seen = IdempotencyAnswer::Seen { record: first };
        assert_eq!(apply(&mut entry, &claim(&second), 30), seen);
        assert_eq!(apply(&mut entry, &claim(&second), 20 + KEPT_MS - 1), seen);
        assert_eq!(apply(&mut entry, &claim(&second), 20 + KEPT_MS), IdempotencyAnswer::Claimed);
    }

    #[test]
    fn a_claim_nobody_commits_lapses_and_a_release_frees_the_key() {
        let (first, second) = (record(1, "a"), record(2, "a"));
        let mut entry = None;
        apply(&mut entry, &claim(&first), 0);
        // The first request's Worker died: after CLAIM_MS the retry gets the key.
        assert_eq!(apply(&mut entry, &claim(&second), CLAIM_MS), IdempotencyAnswer::Claimed);
        // The first one's late commit does not take it back.
        let late = IdempotencyRequest::Commit { key_sha256: "k".into(), record: first.clone() };
        assert_eq!(apply(&mut entry, &late, CLAIM_MS + 1), IdempotencyAnswer::Done);
        assert_eq!(entry.as_ref().unwrap().record, second);
        // Nor does its release; the second's own release frees the key.
        let release = |r: &IdempotencyRecord| IdempotencyRequest::Release {
            key_sha256: "k".into(),
            record: r.clone(),
        };
        apply(&mut entry, &release(&first), CLAIM_MS + 2);
        assert!(entry.is_some());
        apply(&mut entry, &release(&second), CLAIM_MS + 3);
        assert!(entry.is_none());
    }
}
