//! The Durable Object that holds one account's [`Counters`] and its batches' progress
//! (binding `LIMITS`, class `AccountLimiter`), and the edge's way to it ([`ObjectLimiter`]). An object handles its
//! requests one at a time, and no other request runs between its storage read and write (the
//! object's input gate), so the counts are exact across every edge location.

use std::time::Duration;

use futures::future::{select, Either};
use worker::{
    durable_object, Date, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit,
    Response, Result, SqlStorageValue, State,
};

use crate::{
    idempotency::{decide, Change, Entry, IdempotencyAnswer, IdempotencyRequest},
    limits::{
        admit_in_turn, Admit, Admitted, BatchProgress, BatchRequest, BatchSnapshot, Counters,
        LimitAnswer, LimitRequest, Limiter,
    },
    store::StoreError,
};

/// The storage key of the object's counters.
const COUNTERS: &str = "counters";
/// The path of batch requests (any other path is a limit request).
const BATCH_PATH: &str = "/batch";
/// The path of `Idempotency-Key` requests.
const IDEMPOTENCY_PATH: &str = "/idempotency";
/// The path of a submission's admission ([`Admit`]).
const ADMIT_PATH: &str = "/admit";

/// The storage key of a batch's progress: one key each, so that a report reads and writes
/// only its own batch.
fn batch_key(id: &tailpdf_shared::JobId) -> String {
    format!("batch:{id}")
}

/// How long the edge waits for an account's object before letting the request through.
const DEADLINE: Duration = Duration::from_secs(2);

#[durable_object]
pub struct AccountLimiter {
    state: State,
}

impl DurableObject for AccountLimiter {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        if req.path() == BATCH_PATH {
            let request: BatchRequest = req.json().await?;
            return Response::from_json(&self.batch(&request).await?);
        }
        if req.path() == IDEMPOTENCY_PATH {
            let request: IdempotencyRequest = req.json().await?;
            return Response::from_json(&self.idempotency(&request)?);
        }
        if req.path() == ADMIT_PATH {
            let request: Admit = req.json().await?;
            let admitted = admit_in_turn(&Here(self), "", &request).await;
            return Response::from_json(&admitted.map_err(|e| worker::Error::RustError(e.0))?);
        }
        let request: LimitRequest = req.json().await?;
        Response::from_json(&self.limit(&request).await?)
    }
}

/// The object's own state as a [`Limiter`], so that an [`Admit`] runs here step by step as
/// [`admit_in_turn`] says, with no other request in between.
struct Here<'a>(&'a AccountLimiter);

impl Limiter for Here<'_> {
    async fn ask(
        &self,
        _: &str,
        request: &LimitRequest,
    ) -> std::result::Result<LimitAnswer, StoreError> {
        self.0.limit(request).await.map_err(|e| StoreError(e.to_string()))
    }

    async fn batch(
        &self,
        _: &str,
        request: &BatchRequest,
    ) -> std::result::Result<Option<BatchSnapshot>, StoreError> {
        self.0.batch(request).await.map_err(|e| StoreError(e.to_string()))
    }

    async fn idempotency(
        &self,
        _: &str,
        request: &IdempotencyRequest,
    ) -> std::result::Result<IdempotencyAnswer, StoreError> {
        self.0.idempotency(request).map_err(|e| StoreError(e.to_string()))
    }
}

/// One row a key (its sha256), its [`Entry`] as JSON text; rows past their expiry are deleted
/// by the next request (the index makes that cheap), so the table holds a day of keys at most.
const IDEMPOTENCY_SCHEMA: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS idempotency
       (key TEXT PRIMARY KEY, entry TEXT NOT NULL, expires_ms INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_ms)",
];

#[derive(serde::Deserialize)]
struct EntryRow {
    entry: String,
}

impl AccountLimiter {
    /// An `Idempotency-Key` request: the key's entry read, [`decide`]d, written back. SQL
    /// calls are synchronous: nothing else runs in the object between the read and the write.
    fn idempotency(&self, request: &IdempotencyRequest) -> Result<IdempotencyAnswer> {
        let sql = self.state.storage().sql();
        let now = Date::now().as_millis();
        let now_value = SqlStorageValue::try_from_i64(i64::try_from(now).unwrap_or(i64::MAX))?;
        for statement in IDEMPOTENCY_SCHEMA {
            sql.exec(statement, None::<Vec<SqlStorageValue>>)?;
        }
        sql.exec("DELETE FROM idempotency WHERE expires_ms <= ?", vec![now_value])?;
        let key = SqlStorageValue::from(request.key_sha256());
        let rows: Vec<EntryRow> = sql
            .exec("SELECT entry FROM idempotency WHERE key = ?", vec![key.clone()])?
            .to_array()?;
        let entry: Option<Entry> =
            rows.first().and_then(|row| serde_json::from_str(&row.entry).ok());
        let (answer, change) = decide(entry.as_ref(), request, now);
        match change {
            Change::Keep => {}
            Change::Put(entry) => {
                let expires = i64::try_from(entry.expires_ms).unwrap_or(i64::MAX);
                let values = vec![
                    key,
                    SqlStorageValue::from(serde_json::to_string(&entry)?),
                    SqlStorageValue::try_from_i64(expires)?,
                ];
                sql.exec(
                    "INSERT OR REPLACE INTO idempotency (key, entry, expires_ms) VALUES (?, ?, ?)",
                    values,
                )?;
            }
            Change::Delete => {
                sql.exec("DELETE FROM idempotency WHERE key = ?", vec![key])?;
            }
        }
        Ok(answer)
    }

    /// A limit request: the counters loaded, changed by [`Counters::handle`], stored back.
    async fn limit(&self, request: &LimitRequest) -> Result<LimitAnswer> {
        let mut counters = self.counters().await?;
        let before = counters.clone();
        let answer = counters.handle(request, Date::now().as_millis());
        if counters != before {
            self.state.storage().put(COUNTERS, serde_json::to_string(&counters)?).await?;
        }
        Ok(answer)
    }

    async fn counters(&self) -> Result<Counters> {
        // Kept as JSON text: exact integers whatever JavaScript numbers can hold.
        Ok(match self.state.storage().get::<String>(COUNTERS).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or_default(),
            None => Counters::default(),
        })
    }

    /// A batch request: its progress loaded, changed by [`Counters::handle_batch`], stored
    /// back, and the keys of batches that expired deleted.
    async fn batch(&self, request: &BatchRequest) -> Result<Option<BatchSnapshot>> {
        let storage = self.state.storage();
        let key = batch_key(request.batch_id());
        let mut counters = self.counters().await?;
        let mut progress: Option<BatchProgress> = match storage.get::<String>(&key).await? {
            Some(text) => serde_json::from_str(&text).ok(),
            None => None,
        };
        let (counters_before, progress_before) = (counters.clone(), progress.clone());
        let outcome = counters.handle_batch(request, &mut progress, Date::now().as_millis());
        if progress != progress_before {
            match &progress {
                Some(p) => storage.put(&key, serde_json::to_string(p)?).await?,
                None => {
                    storage.delete(&key).await?;
                }
            }
        }
        for id in &outcome.expired {
            storage.delete(&batch_key(id)).await?;
        }
        if counters != counters_before {
            storage.put(COUNTERS, serde_json::to_string(&counters)?).await?;
        }
        Ok(outcome.answer)
    }
}

/// The accounts' objects, one per account name.
pub(crate) struct ObjectLimiter(pub(crate) ObjectNamespace);

impl ObjectLimiter {
    /// `request` to `account`'s object at `path`, answered within [`DEADLINE`].
    async fn call<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
        &self,
        account: &str,
        path: &str,
        request: &Q,
    ) -> std::result::Result<A, StoreError> {
        let failed = |e: worker::Error| StoreError(format!("limits of {account}: {e}"));
        let stub = self.0.get_by_name(account).map_err(failed)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(serde_json::to_string(request).map_err(|e| failed(e.into()))?.into()));
        // The host is never resolved: the request goes to the object.
        let req =
            Request::new_with_init(&format!("https://limits{path}"), &init).map_err(failed)?;
        let call = async {
            let mut answer = stub.fetch_with_request(req).await?;
            answer.json::<A>().await
        };
        let deadline = worker::Delay::from(DEADLINE);
        futures::pin_mut!(call, deadline);
        match select(call, deadline).await {
            Either::Left((answer, _)) => answer.map_err(failed),
            Either::Right(_) => Err(StoreError(format!("limits of {account}: no answer in time"))),
        }
    }
}

impl Limiter for ObjectLimiter {
    async fn ask(
        &self,
        account: &str,
        request: &LimitRequest,
    ) -> std::result::Result<LimitAnswer, StoreError> {
        let answer = self.call(account, "/", request).await;
        if let Err(e) = &answer {
            // The request goes through unlimited (limits::check): say so.
            worker::console_warn!("{e}");
        }
        answer
    }

    async fn batch(
        &self,
        account: &str,
        request: &BatchRequest,
    ) -> std::result::Result<Option<BatchSnapshot>, StoreError> {
        let answer = self.call(account, BATCH_PATH, request).await;
        if let Err(e) = &answer {
            worker::console_error!("{e}");
        }
        answer
    }

    async fn idempotency(
        &self,
        account: &str,
        request: &IdempotencyRequest,
    ) -> std::result::Result<IdempotencyAnswer, StoreError> {
        let answer = self.call(account, IDEMPOTENCY_PATH, request).await;
        if let Err(e) = &answer {
            worker::console_error!("{e}");
        }
        answer
    }

    async fn admit(
        &self,
        account: &str,
        admit: &Admit,
    ) -> std::result::Result<Admitted, StoreError> {
        let answer = self.call(account, ADMIT_PATH, admit).await;
        if let Err(e) = &answer {
            worker::console_warn!("{e}");
        }
        answer
    }
}
