//! What every client request goes through before it makes anything, single job or batch
//! alike: its API key, its account's requests per minute, and its `Idempotency-Key` (one key
//! space for `POST /pdf` and `POST /pdf/batch`, kept by the account's object).

use sha2::{Digest, Sha256};
use tailpdf_shared::{signing::hash_api_key, trace::TraceParent, ApiError, ErrorCode, JobId};

use crate::{
    config::EdgeConfig,
    error::EdgeError,
    idempotency::{IdempotencyAnswer, IdempotencyRecord, IdempotencyRequest},
    limits::{check, LimitRequest, Limiter},
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

/// Counts one request against the account's requests per minute (429 over it); returns the
/// account's limits. `POST /pdf` and `POST /pdf/batch` alike: a batch is one request.
pub(crate) async fn count_request(
    limiter: &impl Limiter,
    cfg: &EdgeConfig,
    account: &Account,
) -> Result<Limits, EdgeError> {
    let limits = account.limits.or(cfg.default_limits);
    let per_minute = limits.requests_per_minute.unwrap_or(0);
    if per_minute > 0 {
        let answer = limiter.ask(&account.account, &LimitRequest::Request { per_minute }).await;
        check(answer, |secs| {
            format!(
                "Too many requests: this API key's account may send {per_minute} requests a \
                 minute. Retry in {secs} s."
            )
        })?;
    }
    Ok(limits)
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

/// Claims the key (jobs and batches share one key space) with the account's object, for what
/// this request makes; 409 when it came before with another body, or while another request
/// with it is being handled; 503 when the object cannot be asked (a replay must never make a
/// second job).
pub(crate) async fn idempotency(
    limiter: &impl Limiter,
    account: &Account,
    key: Option<&str>,
    body: &[u8],
    made: Made,
) -> Result<Idempotency, EdgeError> {
    let Some(key) = key else { return Ok(Idempotency::Without) };
    let body_sha256 = hex::encode(Sha256::digest(body));
    let record = match made {
        Made::Job(id) => IdempotencyRecord { job_id: Some(id), body_sha256, ..Default::default() },
        Made::Batch { batch_id, documents } => IdempotencyRecord {
            batch_id: Some(batch_id),
            batch_documents: Some(documents),
            body_sha256,
            ..Default::default()
        },
    };
    let key_sha256 = hex::encode(Sha256::digest(key.as_bytes()));
    let claim =
        IdempotencyRequest::Claim { key_sha256: key_sha256.clone(), record: record.clone() };
    let unavailable = || {
        EdgeError::unavailable("Idempotency keys cannot be checked right now; retry shortly.", 5)
    };
    match limiter.idempotency(&account.account, &claim).await.map_err(|_| unavailable())? {
        IdempotencyAnswer::Claimed => Ok(Idempotency::Claimed(Claim { key_sha256, record })),
        IdempotencyAnswer::Seen { record: seen } if seen.body_sha256 == record.body_sha256 => {
            Ok(Idempotency::Seen(seen))
        }
        IdempotencyAnswer::InProgress { body_sha256 } if body_sha256 == record.body_sha256 => {
            Err(ApiError {
                retry_after_secs: Some(1),
                ..ApiError::new(
                    ErrorCode::IdempotencyConflict,
                    "A request with this Idempotency-Key is still being handled: retry in a \
                     moment to get its result.",
                )
            }
            .into())
        }
        IdempotencyAnswer::Seen { .. } | IdempotencyAnswer::InProgress { .. } => {
            Err(idempotency_conflict())
        }
        IdempotencyAnswer::Done => Err(unavailable()),
    }
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
