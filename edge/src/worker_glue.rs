//! The Worker's entry points: HTTP (`fetch`) and the queue consumers (`queue`). They turn
//! workers-rs types into the plain calls of [`crate::jobs`], [`crate::batches`],
//! [`crate::events`] and [`crate::delivery`] and back; no rule lives here.

use futures::future::{select, Either};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;
use tailpdf_shared::{
    messages::{RenderJobMessage, WebhookMessage},
    ApiError, Timestamp,
};
use worker::{
    event, AbortController, Context, Delay, Env, Fetch, Headers, MessageBatch, MessageExt, Method,
    ObjectNamespace, QueueRetryOptionsBuilder, Request, RequestInit, RequestRedirect, Response,
    Result,
};

use crate::{
    admission::{self, SubmitHeaders},
    batches::{self, BatchSubmission},
    bindings::{config, error_response, kv, limiter, queue, WorkerKv},
    config::EdgeConfig,
    consumers::{self, Answer, CappedBody, Http, Post, Verdict, STORAGE_RETRY_SECS},
    job_object::{self, ObjectEnds, Routed},
    job_object_class::ObjectJobs,
    jobs::{self, Submission},
    queue_routes::{self, queue_route, QueueRoute},
    routes::{self, Route},
    signed_calls, sync_render,
};

/// Workers' `fetch`, for the consumers; in Containers mode a renderer's call goes through its
/// instance's object.
struct WorkerHttp(Option<ObjectNamespace>);

impl WorkerHttp {
    fn of(env: &Env, cfg: &EdgeConfig) -> Self {
        Self(container_objects(env, cfg))
    }
}

impl Http for WorkerHttp {
    async fn post(&self, post: Post) -> std::result::Result<Answer, String> {
        let (response, _) = exchange(self.0.as_ref(), post, None).await?;
        Ok(answer_of(&response))
    }

    async fn post_reading(&self, post: Post) -> std::result::Result<(Answer, Vec<u8>), String> {
        let (response, body) =
            exchange(self.0.as_ref(), post, Some(consumers::MAX_ANSWER_BYTES)).await?;
        // Over the limit it is no answer the consumer can read: an empty body says so.
        Ok((answer_of(&response), body.unwrap_or_default()))
    }
}

fn headers_of(pairs: &[(&str, String)]) -> std::result::Result<Headers, String> {
    let h = Headers::new();
    for (name, value) in pairs {
        h.set(name, value).map_err(|e| e.to_string())?;
    }
    Ok(h)
}

fn answer_of(response: &Response) -> Answer {
    let retry_after =
        response.headers().get("Retry-After").ok().flatten().and_then(|v| v.trim().parse().ok());
    Answer { status: response.status_code(), retry_after }
}

/// A consumer's verdict, carried out on its message.
fn settle(message: &impl MessageExt, verdict: Verdict) {
    match verdict {
        Verdict::Ack => message.ack(),
        Verdict::Retry { delay_secs } => retry(message, delay_secs),
    }
}

fn now_secs() -> i64 {
    (worker::Date::now().as_millis() / 1000) as i64
}

fn now() -> Timestamp {
    Timestamp::from_unix(now_secs()).unwrap_or_else(|_| unreachable!("the clock is within 1..9999"))
}

/// The jobs' and batches' objects.
fn objects(env: &Env) -> std::result::Result<ObjectJobs, ApiError> {
    env.durable_object("JOB_OBJECTS").map(ObjectJobs).map_err(|e| {
        worker::console_error!("Durable Object binding JOB_OBJECTS: {e}");
        ApiError::unavailable("The service is not configured; retry later.", 60)
    })
}

/// Job state: a job's and a batch's keys in their object, the rest (dead letters) in KV.
fn jobs(env: &Env) -> std::result::Result<Routed<WorkerKv, ObjectJobs>, ApiError> {
    Ok(Routed { kv: kv(env, "JOBS")?, objects: objects(env)? })
}

fn json<T: Serialize>(value: &T, status: u16) -> Result<Response> {
    Ok(Response::from_json(value)?.with_status(status))
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let started = worker::Date::now().as_millis();
    let traceparent = req.headers().get("traceparent").ok().flatten();
    let trace = traceparent
        .and_then(|h| tailpdf_shared::trace::TraceParent::parse(&h))
        .unwrap_or_else(tailpdf_shared::trace::TraceParent::new_trace);
    let path = req.path();
    // The method as sent: workers-rs names only the methods it knows and reads any other
    // (QUERY, PROPFIND, ...) as GET.
    let method = req.inner().method();
    let result = match routes::route(&method, &path) {
        Ok(Route::Index) => json(&routes::SERVICE_INFO, 200).map_err(internal),
        Ok(Route::Pdf) => post_pdf(&mut req, &env, &trace).await,
        Ok(Route::Job(id)) => get_job(&req, &env, id).await,
        Ok(Route::PdfBatch) => post_pdf_batch(&mut req, &env, &trace).await,
        Ok(Route::Batch(id)) => get_batch(&req, &env, id).await,
        Ok(Route::JobEvents(id)) => post_event(&mut req, &env, id, &path).await,
        Ok(Route::JobSpec(id)) => get_spec(&req, &env, id, &path).await,
        Ok(Route::DeadLetters) => get_dead_letters(&req, &env, &path).await,
        Ok(Route::ReplayDeadLetters) => post_replay(&mut req, &env, &path).await,
        Err(e) => Err(e),
    };
    let (mut response, error) = match result {
        Ok(response) => (response, None),
        Err(e) => (error_response(&e)?, Some(e.code.as_str())),
    };
    for (name, value) in routes::EVERY_ANSWER {
        response.headers_mut().set(name, value)?;
    }
    let line = crate::access_log::AccessLine {
        method: &method,
        path: &path,
        status: response.status_code(),
        error,
        ms: worker::Date::now().as_millis().saturating_sub(started),
        trace_id: trace.trace_id(),
    };
    worker::console_log!("{}", line.to_json());
    Ok(response)
}

/// The body, within `route`'s limit (413 when it declares more).
async fn body(req: &mut Request, route: Route<'_>) -> std::result::Result<Vec<u8>, ApiError> {
    let declared =
        req.headers().get("Content-Length").ok().flatten().and_then(|v| v.parse::<usize>().ok());
    routes::check_declared_length(declared, route.body_limit())?;
    req.bytes().await.map_err(|_| ApiError::validation("The request body could not be read."))
}

/// What `POST /pdf` and `POST /pdf/batch` read before their body: the configuration, the
/// key's account, and the headers of a submission.
struct Submitter {
    cfg: EdgeConfig,
    account: crate::store::Account,
    idempotency: Option<String>,
    no_store: bool,
}

async fn submitter(req: &Request, env: &Env) -> std::result::Result<Submitter, ApiError> {
    let cfg = config(env)?;
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let api_key = header("X-API-Key");
    let account = admission::authenticate(&kv(env, "API_KEYS")?, api_key.as_deref()).await?;
    let no_store = tailpdf_shared::request::no_store_requested(header("X-No-Store").as_deref());
    Ok(Submitter { cfg, account, idempotency: header("Idempotency-Key"), no_store })
}

/// `X-TailPDF-Ignored` on `response`, when fields of the request were ignored.
fn with_ignored(response: &mut Response, ignored: &[String]) -> std::result::Result<(), ApiError> {
    if let Some(value) = tailpdf_shared::client_shapes::ignored_header_value(ignored) {
        response
            .headers_mut()
            .set(tailpdf_shared::client_shapes::IGNORED_HEADER, &value)
            .map_err(internal)?;
    }
    Ok(())
}

async fn post_pdf_batch(
    req: &mut Request,
    env: &Env,
    trace: &tailpdf_shared::trace::TraceParent,
) -> std::result::Result<Response, ApiError> {
    let Submitter { cfg, account, idempotency, no_store } = submitter(req, env).await?;
    let headers =
        SubmitHeaders { idempotency_key: idempotency.as_deref(), no_store, trace: Some(trace) };
    let body = body(req, Route::PdfBatch).await?;
    let jobs = jobs(env)?;
    let render_batches = queue(env, "RENDER_BATCHES")?;
    let limiter = limiter(env)?;
    let stores = (&jobs, &render_batches, &limiter);
    let submitted = batches::submit_batch(stores, &cfg, &account, headers, &body, now()).await?;
    let (BatchSubmission::Accepted(accepted) | BatchSubmission::Replayed(accepted)) =
        submitted.submission;
    let mut response = json(&accepted, 202).map_err(internal)?;
    response.headers_mut().set("Location", batches::location(&accepted)).map_err(internal)?;
    with_ignored(&mut response, &submitted.ignored)?;
    Ok(response)
}

async fn get_batch(req: &Request, env: &Env, id: &str) -> std::result::Result<Response, ApiError> {
    let cfg = config(env)?;
    let api_key = req.headers().get("X-API-Key").ok().flatten();
    let account = admission::authenticate(&kv(env, "API_KEYS")?, api_key.as_deref()).await?;
    let (jobs, limiter) = (jobs(env)?, limiter(env)?);
    let view = batches::batch_status(&jobs, &limiter, &cfg, &account, id, now()).await?;
    json(&view, 200).map_err(internal)
}

async fn post_pdf(
    req: &mut Request,
    env: &Env,
    trace: &tailpdf_shared::trace::TraceParent,
) -> std::result::Result<Response, ApiError> {
    let Submitter { cfg, account, idempotency, no_store } = submitter(req, env).await?;
    let headers =
        SubmitHeaders { idempotency_key: idempotency.as_deref(), no_store, trace: Some(trace) };
    let body = body(req, Route::Pdf).await?;
    let jobs = jobs(env)?;
    let render_jobs = queue(env, "RENDER_JOBS")?;
    let limiter = limiter(env)?;
    let stores = (&jobs, &render_jobs, &limiter);
    let submitted = jobs::submit(stores, &cfg, &account, headers, &body, now()).await?;
    let mut response = match submitted.submission {
        Submission::Sync(spec) => render_sync(env, &cfg, &account.account, &spec).await?,
        Submission::Accepted(accepted) | Submission::Replayed(accepted) => {
            let location = jobs::location(&accepted);
            let mut response = json(&accepted, 202).map_err(internal)?;
            response.headers_mut().set("Location", &location).map_err(internal)?;
            response
        }
    };
    with_ignored(&mut response, &submitted.ignored)?;
    Ok(response)
}

fn internal(e: worker::Error) -> ApiError {
    worker::console_error!("{e}");
    ApiError::new(
        tailpdf_shared::ErrorCode::InternalError,
        "Something failed on our side; retry shortly.",
    )
}

/// The renderer instances' objects, in Containers mode (logged once a call if the binding is
/// missing: the calls then fail as unanswered, and the jobs wait).
fn container_objects(env: &Env, cfg: &EdgeConfig) -> Option<ObjectNamespace> {
    cfg.containers.as_ref()?;
    env.durable_object(crate::containers::BINDING)
        .map_err(|e| {
            worker::console_error!(
                "RENDERER_CONTAINERS is set but the Durable Object binding {} is not: {e}",
                crate::containers::BINDING
            );
        })
        .ok()
}

/// `post`, never following a redirect, within its deadline; with `read: Some(limit)` the
/// answer's body is read too, within the same deadline (`None` if it is longer than `limit`).
/// A call that names a renderer instance goes to that instance's object in `containers`.
async fn exchange(
    containers: Option<&ObjectNamespace>,
    post: Post,
    read: Option<usize>,
) -> std::result::Result<(Response, Option<Vec<u8>>), String> {
    let Post { url, headers, body, timeout, instance } = post;
    let mut init = RequestInit::new();
    // A redirect is an answer, not an instruction: it could point anywhere, private included.
    init.with_redirect(RequestRedirect::Manual)
        .with_method(Method::Post)
        .with_headers(headers_of(&headers)?)
        .with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    let request = Request::new_with_init(&url, &init).map_err(|e| e.to_string())?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let stub = match (instance, containers) {
        (None, _) => None,
        (Some(name), Some(objects)) => Some(
            objects.id_from_name(&name).and_then(|id| id.get_stub()).map_err(|e| e.to_string())?,
        ),
        (Some(name), None) => return Err(format!("no binding to reach instance {name}")),
    };
    let work = async {
        let mut response = match stub {
            // An object's fetch takes no signal: the deadline below drops it instead.
            Some(stub) => stub.fetch_with_request(request).await,
            None => Fetch::Request(request).send_with_signal(&signal).await,
        }
        .map_err(|e| e.to_string())?;
        let body = match read {
            Some(limit) => read_at_most(&mut response, limit).await?,
            None => None,
        };
        Ok((response, body))
    };
    let deadline = Delay::from(timeout);
    futures::pin_mut!(work, deadline);
    match select(work, deadline).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => {
            controller.abort();
            Err(format!("no whole answer within {timeout:?}"))
        }
    }
}

/// The body of `response` if it is at most `limit` bytes; `None` (and the rest unread) if not.
async fn read_at_most(
    response: &mut Response,
    limit: usize,
) -> std::result::Result<Option<Vec<u8>>, String> {
    let declared = response
        .headers()
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok());
    let Some(mut body) = CappedBody::start(limit, declared) else { return Ok(None) };
    let mut stream = response.stream().map_err(|e| e.to_string())?;
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        if !body.push(&chunk.map_err(|e| e.to_string())?) {
            return Ok(None);
        }
    }
    Ok(Some(body.into_body()))
}

/// A sync render on the renderer, as `account`'s (so that it shares its tabs fairly).
async fn render_sync(
    env: &Env,
    cfg: &EdgeConfig,
    account: &str,
    spec: &tailpdf_shared::RenderSpec,
) -> std::result::Result<Response, ApiError> {
    let body = serde_json::to_vec(spec).map_err(|e| ApiError::validation(e.to_string()))?;
    let path = tailpdf_shared::messages::sync_render_path(account);
    // The renderers from one of its own each time, within one deadline: one that does not
    // answer, or answers 503 or 429 (full, starting), is skipped for the next.
    let started = js_sys::Date::now();
    let key = format!("{account}/{started}");
    let mut last = None;
    let containers = container_objects(env, cfg);
    for origin in crate::renderers::order(&cfg.renderers, &key) {
        let spent =
            std::time::Duration::from_millis((js_sys::Date::now() - started).max(0.0) as u64);
        let timeout = cfg.sync_timeout.saturating_sub(spent);
        if timeout.is_zero() {
            break;
        }
        let post = Post { timeout, ..Post::to_renderer(cfg, origin, &path, body.clone(), now()) };
        // The whole PDF within the deadline: a renderer that stops mid-answer is a 503 too.
        match exchange(containers.as_ref(), post, Some(usize::MAX)).await {
            Err(e) => worker::console_warn!("renderer {origin}: {e}"),
            Ok((answer, body)) => {
                let busy = sync_render::try_next(answer.status_code());
                last = Some((answer, body));
                if !busy {
                    break;
                }
            }
        }
    }
    let (answer, body) = last.ok_or_else(sync_render::unreachable)?;
    let body = body.unwrap_or_default();
    if sync_render::refused(answer.status_code()) {
        worker::console_error!(
            "renderer: {} to a signed call: the Worker's INTERNAL_SECRET and the renderer's differ",
            answer.status_code()
        );
    }
    sync_render::judge(&answer_of(&answer), &body)?;
    let duration = answer.headers().get("X-Render-Duration-Ms").ok().flatten();
    let mut response = Response::from_bytes(body).map_err(internal)?;
    response.headers_mut().set("Content-Type", "application/pdf").map_err(internal)?;
    if let Some(d) = duration {
        response.headers_mut().set("X-Render-Duration-Ms", &d).map_err(internal)?;
    }
    Ok(response)
}

async fn get_job(req: &Request, env: &Env, id: &str) -> std::result::Result<Response, ApiError> {
    let cfg = config(env)?;
    let api_key = req.headers().get("X-API-Key").ok().flatten();
    let account = admission::authenticate(&kv(env, "API_KEYS")?, api_key.as_deref()).await?;
    let view = jobs::job_status(&jobs(env)?, &cfg, &account, id, now()).await?;
    json(&view, 200).map_err(internal)
}

/// Internal calls carry `X-TailPDF-Internal`; 401 otherwise.
fn require_signature(
    req: &Request,
    cfg: &EdgeConfig,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::result::Result<(), ApiError> {
    signed_calls::verify_internal_call(
        cfg,
        signature(req).as_deref(),
        method,
        path,
        body,
        now_secs(),
    )
}

/// Operator calls carry `X-TailPDF-Internal` signed with `ADMIN_SECRET`; 401 otherwise.
fn require_admin_signature(
    req: &Request,
    cfg: &EdgeConfig,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::result::Result<(), ApiError> {
    signed_calls::verify_admin_call(cfg, signature(req).as_deref(), method, path, body, now_secs())
}

fn signature(req: &Request) -> Option<String> {
    req.headers().get(tailpdf_shared::signing::INTERNAL_SIGNATURE_HEADER).ok().flatten()
}

async fn post_event(
    req: &mut Request,
    env: &Env,
    id: &str,
    path: &str,
) -> std::result::Result<Response, ApiError> {
    let cfg = config(env)?;
    let body = body(req, Route::JobEvents(id)).await?;
    require_signature(req, &cfg, "POST", path, &body)?;
    let ack = job_object::apply_event(&objects(env)?, &cfg, id, &body).await?;
    json(&ack, 200).map_err(internal)
}

async fn get_spec(
    req: &Request,
    env: &Env,
    id: &str,
    path: &str,
) -> std::result::Result<Response, ApiError> {
    let cfg = config(env)?;
    require_signature(req, &cfg, "GET", path, b"")?;
    let spec = jobs::job_spec(&jobs(env)?, id).await?;
    json(&spec, 200).map_err(internal)
}

async fn get_dead_letters(
    req: &Request,
    env: &Env,
    path: &str,
) -> std::result::Result<Response, ApiError> {
    let cfg = config(env)?;
    require_admin_signature(req, &cfg, "GET", path, b"")?;
    let letters = crate::dead_letters::list(&kv(env, "JOBS")?).await?;
    json(&letters, 200).map_err(internal)
}

async fn post_replay(
    req: &mut Request,
    env: &Env,
    path: &str,
) -> std::result::Result<Response, ApiError> {
    let cfg = config(env)?;
    let body = body(req, Route::ReplayDeadLetters).await?;
    require_admin_signature(req, &cfg, "POST", path, &body)?;
    let (jobs, webhooks) = (kv(env, "JOBS")?, queue(env, "WEBHOOKS")?);
    let outcome = crate::dead_letters::replay(&jobs, &webhooks, &body).await?;
    worker::console_log!(
        "dead letters: replayed {:?}, not found {:?}",
        outcome.replayed,
        outcome.not_found
    );
    json(&outcome, 200).map_err(internal)
}

#[event(queue)]
async fn queue_consumer(batch: MessageBatch<Value>, env: Env, _ctx: Context) -> Result<()> {
    let Ok(cfg) = config(&env) else {
        batch.retry_all();
        return Ok(());
    };
    let name = batch.queue();
    let messages = batch.messages()?;
    let route = queue_route(&name);
    if route == QueueRoute::RenderBatches {
        push_render_group(&cfg, &env, &messages).await;
        return Ok(());
    }
    if route == QueueRoute::Unknown {
        worker::console_error!(
            "queue {name}: not one this Worker consumes; its {} messages come back",
            messages.len()
        );
    }
    // A batch's messages are independent: handled at once, so that one slow render or webhook
    // endpoint does not hold up the others (each is acknowledged or retried on its own).
    let handled = messages.iter().map(|message| async {
        match route {
            QueueRoute::RenderJobs => push_render_job(&cfg, &env, message).await,
            QueueRoute::RenderDeadLetters => fail_dead_lettered_job(&cfg, &env, message).await,
            QueueRoute::Webhooks => deliver_webhook(&cfg, &env, message).await,
            QueueRoute::WebhookDeadLetters => keep_dead_letter(&cfg, &env, message).await,
            QueueRoute::RenderBatches | QueueRoute::Unknown => {
                settle(message, queue_routes::unknown_queue())
            }
        }
    });
    futures::future::join_all(handled).await;
    Ok(())
}

/// render-jobs-dlq: the job fails (consumers::fail_dead_lettered).
async fn fail_dead_lettered_job(cfg: &EdgeConfig, env: &Env, message: &worker::Message<Value>) {
    let Some(job) = body_or_drop::<RenderJobMessage>(message, "render-jobs-dlq") else {
        return;
    };
    let Ok(objects) = objects(env) else {
        retry(message, STORAGE_RETRY_SECS);
        return;
    };
    let ends = ObjectEnds(&objects);
    let verdict = consumers::fail_dead_lettered(&ends, cfg, &job, now()).await;
    worker::console_warn!("render-jobs-dlq: {} dead-lettered: {verdict:?}", job.job_id);
    settle(message, verdict);
}

/// The message's body as `T`: JSON text as sent, or (sent before messages were text) a JSON
/// value. One that is neither (it could never be handled) is logged and acknowledged, so that
/// it does not come back.
fn body_or_drop<T: DeserializeOwned>(message: &worker::Message<Value>, queue: &str) -> Option<T> {
    let body = match message.body() {
        Value::String(text) => serde_json::from_str(text),
        value => serde_json::from_value(value.clone()),
    };
    match body {
        Ok(body) => Some(body),
        Err(e) => {
            worker::console_error!("{queue}: dropping a message it cannot read: {e}");
            message.ack();
            None
        }
    }
}

fn retry(message: &impl MessageExt, delay_secs: u32) {
    message.retry_with_options(
        &QueueRetryOptionsBuilder::new().with_delay_seconds(delay_secs).build(),
    );
}

/// Push mode: the job to the renderer, which answers at once (consumers::push_render_job).
async fn push_render_job(cfg: &EdgeConfig, env: &Env, message: &worker::Message<Value>) {
    let Some(job) = body_or_drop::<RenderJobMessage>(message, "render-jobs") else {
        return;
    };
    let (Ok(render_jobs), Ok(objects)) = (queue(env, "RENDER_JOBS"), objects(env)) else {
        retry(message, cfg.render_retry_delay_secs);
        return;
    };
    let ends = ObjectEnds(&objects);
    let verdict = consumers::push_render_job(
        &WorkerHttp::of(env, cfg),
        &render_jobs,
        &ends,
        cfg,
        &job,
        now(),
    )
    .await;
    if verdict != Verdict::Ack {
        worker::console_warn!("render-jobs: {} comes back: {verdict:?}", job.job_id);
    }
    settle(message, verdict);
}

/// Push mode for render-batches: every message of the delivery at once, a batch's documents
/// to the renderer together; each message acknowledged or retried by its own verdict.
async fn push_render_group(cfg: &EdgeConfig, env: &Env, messages: &[worker::Message<Value>]) {
    let readable: Vec<(&worker::Message<Value>, RenderJobMessage)> = messages
        .iter()
        .filter_map(|m| body_or_drop::<RenderJobMessage>(m, "render-batches").map(|job| (m, job)))
        .collect();
    let (Ok(render_batches), Ok(objects)) = (queue(env, "RENDER_BATCHES"), objects(env)) else {
        for (message, _) in &readable {
            retry(*message, cfg.render_retry_delay_secs);
        }
        return;
    };
    let group: Vec<RenderJobMessage> = readable.iter().map(|(_, job)| job.clone()).collect();
    let ends = ObjectEnds(&objects);
    let verdicts = consumers::push_render_group(
        &WorkerHttp::of(env, cfg),
        &render_batches,
        &ends,
        cfg,
        &group,
        now(),
    )
    .await;
    for ((message, job), verdict) in readable.iter().zip(verdicts) {
        if verdict != Verdict::Ack {
            worker::console_warn!("render-batches: {} comes back: {verdict:?}", job.job_id);
        }
        settle(*message, verdict);
    }
}

/// webhooks-dlq: the delivery is kept (consumers::keep_dead_letter).
async fn keep_dead_letter(cfg: &EdgeConfig, env: &Env, message: &worker::Message<Value>) {
    let Some(hook) = body_or_drop::<WebhookMessage>(message, "webhooks-dlq") else {
        return;
    };
    let Ok(jobs) = kv(env, "JOBS") else {
        retry(message, STORAGE_RETRY_SECS);
        return;
    };
    let verdict = consumers::keep_dead_letter(&jobs, &hook, cfg, now()).await;
    worker::console_warn!(
        "webhooks-dlq: {} after {} attempts ({}): {verdict:?}",
        hook.payload.webhook_id(),
        hook.attempt,
        hook.url
    );
    settle(message, verdict);
}

async fn deliver_webhook(cfg: &EdgeConfig, env: &Env, message: &worker::Message<Value>) {
    let Some(hook) = body_or_drop::<WebhookMessage>(message, "webhooks") else {
        return;
    };
    let (Ok(jobs), Ok(keys), Ok(webhooks), Ok(dead_letters)) =
        (jobs(env), kv(env, "API_KEYS"), queue(env, "WEBHOOKS"), queue(env, "WEBHOOKS_DLQ"))
    else {
        retry(message, STORAGE_RETRY_SECS);
        return;
    };
    let secret = match admission::account(&keys, &hook.account).await {
        Ok(account) => account.and_then(|a| a.webhook_secret),
        Err(e) => {
            worker::console_error!("webhooks: {}: account: {e}", hook.payload.subject());
            retry(message, STORAGE_RETRY_SECS);
            return;
        }
    };
    // Never through a renderer's object: a webhook goes where its client said.
    let verdict = consumers::deliver_webhook(
        &WorkerHttp(None),
        &jobs,
        (&webhooks, &dead_letters),
        cfg,
        &hook,
        secret.as_deref(),
        now(),
    )
    .await;
    worker::console_log!(
        "webhooks: {} attempt {} of {:?}: {verdict:?}",
        hook.payload.subject(),
        hook.attempt + 1,
        hook.payload.event()
    );
    settle(message, verdict);
}
