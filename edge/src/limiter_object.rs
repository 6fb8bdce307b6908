//! The Durable Object that holds one account's [`Counters`] (binding `LIMITS`, class
//! `AccountLimiter`), and the edge's way to it ([`ObjectLimiter`]). An object handles its
//! requests one at a time, and no other request runs between its storage read and write (the
//! object's input gate), so the counts are exact across every edge location.

use std::time::Duration;

use futures::future::{select, Either};
use worker::{
    durable_object, Date, DurableObject, Env, Method, ObjectNamespace, Request, RequestInit,
    Response, Result, State,
};

use crate::{
    limits::{Counters, LimitAnswer, LimitRequest, Limiter},
    store::StoreError,
};

/// The storage key of the object's counters.
const COUNTERS: &str = "counters";

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
        let request: LimitRequest = req.json().await?;
        let storage = self.state.storage();
        // Kept as JSON text: exact integers whatever JavaScript numbers can hold.
        let mut counters: Counters = match storage.get::<String>(COUNTERS).await? {
            Some(text) => serde_json::from_str(&text).unwrap_or_default(),
            None => Counters::default(),
        };
        let before = counters.clone();
        let answer = counters.handle(&request, Date::now().as_millis());
        if counters != before {
            storage.put(COUNTERS, serde_json::to_string(&counters)?).await?;
        }
        Response::from_json(&answer)
    }
}

/// The accounts' objects, one per account name.
pub(crate) struct ObjectLimiter(pub(crate) ObjectNamespace);

impl Limiter for ObjectLimiter {
    async fn ask(
        &self,
        account: &str,
        request: &LimitRequest,
    ) -> std::result::Result<LimitAnswer, StoreError> {
        let failed = |e: worker::Error| StoreError(format!("limits of {account}: {e}"));
        let stub = self.0.get_by_name(account).map_err(failed)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(serde_json::to_string(request).map_err(|e| failed(e.into()))?.into()));
        // The host is never resolved: the request goes to the object.
        let req = Request::new_with_init("https://limits/", &init).map_err(failed)?;
        let call = async {
            let mut answer = stub.fetch_with_request(req).await?;
            answer.json::<LimitAnswer>().await
        };
        let deadline = worker::Delay::from(DEADLINE);
        futures::pin_mut!(call, deadline);
        let answer = match select(call, deadline).await {
            Either::Left((answer, _)) => answer.map_err(failed),
            Either::Right(_) => Err(StoreError(format!("limits of {account}: no answer in time"))),
        };
        if let Err(e) = &answer {
            // The request goes through unlimited (limits::check): say so.
            worker::console_warn!("{e}");
        }
        answer
    }
}
