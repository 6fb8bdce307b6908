//! What every client request goes through before it makes anything, single job or batch
//! alike: its API key, its account's requests per minute, and its `Idempotency-Key` (one key
//! space for `POST /pdf` and `POST /pdf/batch`, kept by the account's object).

use sha2::{Digest, Sha256};
use tailpdf_shared::{signing::hash_api_key, trace::TraceParent, ApiError, ErrorCode, JobId};

use crate::{
    config::EdgeConfig,
    error::EdgeError,
    idempotency::{IdempotencyAnswer, IdempotencyRecord, IdempotencyRequest},
    limits::{check, Admit, LimitRequest, Limiter},
    store::{account_key, api_key_key, get_json, Account, Kv, Limits, StoreError},
};

/// The request headers `POST /pdf` reads besides the key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubmitHeaders<'a> {
    /// `Idempotency-Key`.
    pub idempotency_key: Option<&'a str>,
    /// `X-No-Store: true`.
    pub no_store: bool,
    /// The trace this request is part of (`traceparent`, or a new one): the job's message
    /// carries a child of it to the renderer.
    pub trace: Option<&'a TraceParent>,
}

/// `X-API-Key` → the account; 401 when missing or unknown. Keys are looked up by their
/// SHA-256, so no key is ever compared or stored in clear.
pub async fn authenticate(keys: &impl Kv, api_key: Option<&str>) -> Result<Account, EdgeError> {
    let key = api_key.map(str::trim).filter(|k| !k.is_empty()).ok_or_else(|| {
        ApiError::unauthorized("X-API-Key is required: send your API key in the X-API-Key header.")
    })?;
    get_json::<Account>(keys, &api_key_key(&hash_api_key(key))).await?.ok_or_else(|| {
        ApiError::unauthorized("X-API-Key is not valid: check the key you sent.").into()
    })
}

/// The account's webhook secret, for delivery (the queue never carries secrets).
pub async fn account(keys: &impl Kv, name: &str) -> Result<Option<Account>, StoreError> {
    get_json(keys, &account_key(name)).await
}

/// Counts one request against the account's requests per minute (429 over it): a request
/// that makes nothing (a sync render, a body that is refused). One that makes a job or a
/// batch is counted by [`admit`].
pub(crate) async fn count_request(
    limiter: &impl Limiter,
    cfg: &EdgeConfig,
    account: &Account,
) -> Result<(), EdgeError> {
    let per_minute = per_minute(cfg, account);
    if per_minute > 0 {
        let answer = limiter.ask(&account.account, &LimitRequest::Request { per_minute }).await;
        check(answer, |secs| too_many_requests(per_minute, secs))?;
    }
    Ok(())
}

/// The account's limits: its own, else the Worker's defaults.
pub(crate) fn limits(cfg: &EdgeConfig, account: &Account) -> Limits {
    account.limits.or(cfg.default_limits)
}

fn per_minute(cfg: &EdgeConfig, account: &Account) -> u32 {
    limits(cfg, account).requests_per_minute.unwrap_or(0)
}

fn too_many_requests(per_minute: u32, secs: u32) -> String {
    format!(
        "Too many requests: this API key's account may send {per_minute} requests a minute. \
         Retry in {secs} s."
    )
}

/// What an `Idempotency-Key` says about a request.
pub(crate) enum Idempotency {
    /// No key.
    Without,
    /// A new key, claimed for what this request makes: [`settle`] it once that is made, or not.
    Claimed(Claim),
    /// The key came before with this very body: what was made then.
    Seen(IdempotencyRecord),
}

/// A claimed key and what the request is to make.
pub(crate) struct Claim {
    key_sha256: String,
    record: IdempotencyRecord,
}

/// What a request with an `Idempotency-Key` makes.
pub(crate) enum Made {
    Job(JobId),
    Batch { batch_id: JobId, documents: u32 },
}

/// A new job's slot among its account's jobs in flight: its id, and how many the account may
/// have.
pub(crate) struct Slot {
    pub job_id: JobId,
    pub in_flight: u32,
}

/// What a request that makes a job or a batch asks the account's object, in one request
/// ([`Admit`]): count it against the requests per minute, claim its `Idempotency-Key` (jobs
/// and batches share one key space) for what it makes, take the new job's `slot`. 429 over the
/// requests per minute or the jobs in flight; 409 when the key came before with another body,
/// or while another request with it is being handled. When the object cannot be asked: 503 if
/// a key was sent (a replay must never make a second job), else the request goes through (the
/// limits protect capacity; their outage must not take the API down with it).
pub(crate) async fn admit(
    limiter: &impl Limiter,
    (cfg, account): (&EdgeConfig, &Account),
    key: Option<&str>,
    body: &[u8],
    made: Made,
    slot: Option<Slot>,
) -> Result<Idempotency, EdgeError> {
    let per_minute = per_minute(cfg, account);
    let claim = key.map(|key| {
        let body_sha256 = hex::encode(Sha256::digest(body));
        let record = match made {
            Made::Job(id) => {
                IdempotencyRecord { job_id: Some(id), body_sha256, ..Default::default() }
            }
            Made::Batch { batch_id, documents } => IdempotencyRecord {
                batch_id: Some(batch_id),
                batch_documents: Some(documents),
                body_sha256,
                ..Default::default()
            },
        };
        let key_sha256 = hex::encode(Sha256::digest(key.as_bytes()));
        Claim { key_sha256, record }
    });
    let in_flight = slot.as_ref().map_or(0, |s| s.in_flight);
    let request = Admit {
        per_minute,
        claim: claim.as_ref().map(|c| IdempotencyRequest::Claim {
            key_sha256: c.key_sha256.clone(),
            record: c.record.clone(),
        }),
        start: slot.map(|Slot { job_id, in_flight }| LimitRequest::StartJob { job_id, in_flight }),
    };
    let unavailable = || {
        EdgeError::unavailable("Idempotency keys cannot be checked right now; retry shortly.", 5)
    };
    let admitted = match (limiter.admit(&account.account, &request).await, &claim) {
        (Ok(admitted), _) => admitted,
        (Err(_), Some(_)) => return Err(unavailable()),
        (Err(_), None) => return Ok(Idempotency::Without),
    };
    check(Ok(admitted.request), |secs| too_many_requests(per_minute, secs))?;
    let idempotency = match (admitted.claim, claim) {
        (None, _) | (_, None) => Idempotency::Without,
        (Some(IdempotencyAnswer::Claimed), Some(claim)) => Idempotency::Claimed(claim),
        (Some(IdempotencyAnswer::Seen { record: seen }), Some(claim))
            if seen.body_sha256 == claim.record.body_sha256 =>
        {
            return Ok(Idempotency::Seen(seen));
        }
        (Some(IdempotencyAnswer::InProgress { body_sha256 }), Some(claim))
            if body_sha256 == claim.record.body_sha256 =>
        {
            return Err(ApiError {
                retry_after_secs: Some(1),
                ..ApiError::new(
                    ErrorCode::IdempotencyConflict,
                    "A request with this Idempotency-Key is still being handled: retry in a \
                     moment to get its result.",
                )
            }
            .into());
        }
        (Some(IdempotencyAnswer::Seen { .. } | IdempotencyAnswer::InProgress { .. }), _) => {
            return Err(idempotency_conflict());
        }
        (Some(IdempotencyAnswer::Done), _) => return Err(unavailable()),
    };
    if let Some(slot) = admitted.slot {
        // Refused: the object released the claim with it.
        check(Ok(slot), |secs| {
            format!(
                "Too many jobs in flight: this API key's account may have {in_flight} async jobs \
                 rendering at once. Retry in {secs} s, or when one of them ends."
            )
        })?;
    }
    Ok(idempotency)
}

/// Commits a claimed key once the request made what it claimed it for (replays get it for a
/// day), or releases it when nothing was made. A commit that cannot reach the object is tried
/// once more; after that the claim lapses in a minute (crate::idempotency::CLAIM_MS).
pub(crate) async fn settle(
    limiter: &impl Limiter,
    account: &Account,
    idempotency: Idempotency,
    made: bool,
) {
    let Idempotency::Claimed(Claim { key_sha256, record }) = idempotency else { return };
    let request = if made {
        IdempotencyRequest::Commit { key_sha256, record }
    } else {
        IdempotencyRequest::Release { key_sha256, record }
    };
    for _ in 0..2 {
        if limiter.idempotency(&account.account, &request).await.is_ok() {
            return;
        }
    }
}

pub(crate) fn idempotency_conflict() -> EdgeError {
    ApiError::new(
        ErrorCode::IdempotencyConflict,
        "This Idempotency-Key was used with a different request body: use a new key for a new \
         request.",
    )
    .into()
}
