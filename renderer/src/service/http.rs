//! The renderer's HTTP API. Every endpoint but the probes requires `X-TailPDF-Internal`.
//! Handlers are thin: they parse, admit or refuse, and hand over to the engine or the runner.

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, RawQuery, Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use tailpdf_shared::{
    messages::{GroupAnswer, GroupJobEnd, GroupRequest, RenderJobMessage, TakeRequest},
    signing::{verify_internal, INTERNAL_SIGNATURE_HEADER},
    ApiError, RenderSpec,
};

use super::{admission::Purpose, runner::JobEnd, AppState};
use crate::engine::schedule::{Lane, Requester};

/// A spec carries a `POST /pdf` body's content re-encoded: the edge's limit bounds it.
const MAX_INTERNAL_BODY: usize = tailpdf_shared::limits::MAX_BODY_BYTES;

/// The one place an error becomes a response: status, `Retry-After`, `{"error","message"}`.
pub struct ErrorResponse(pub ApiError);

impl IntoResponse for ErrorResponse {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, [(header::CONTENT_TYPE, "application/json")], self.0.to_json())
            .into_response();
        if let Some(secs) = self.0.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let internal = Router::new()
        .route(tailpdf_shared::messages::SYNC_RENDER_PATH, post(render))
        .route(tailpdf_shared::messages::TAKE_PATH, post(take))
        .route("/jobs", post(jobs))
        .route("/jobs/group", post(group))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_signature));
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(internal)
        // The signature middleware has read the body within MAX_INTERNAL_BODY already; the
        // extractors must not cut it at axum's default 2 MB.
        .layer(DefaultBodyLimit::max(MAX_INTERNAL_BODY))
        .with_state(state)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn require_signature(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_INTERNAL_BODY).await else {
        return ErrorResponse(ApiError::new(
            tailpdf_shared::ErrorCode::PayloadTooLarge,
            "The body is too large.",
        ))
        .into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let header = parts.headers.get(INTERNAL_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(e) =
        verify_internal(&state.secret, header, parts.method.as_str(), path, &bytes, now())
    {
        tracing::warn!(path, reason = %e, "internal call refused");
        return ErrorResponse(ApiError::unauthorized(format!(
            "{INTERNAL_SIGNATURE_HEADER} is required and must be valid: {e}."
        )))
        .into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ErrorResponse> {
    serde_json::from_slice(body)
        .map_err(|e| ErrorResponse(ApiError::validation(format!("The body is not valid: {e}."))))
}

fn full(state: &AppState) -> ErrorResponse {
    state.metrics.rejected_full.inc();
    ErrorResponse(ApiError::unavailable("Every tab and queue place is taken; retry shortly.", 1))
}

/// `POST /render?account=<id>`: the account (an opaque id of the edge's, never a key) is in
/// the signed path; a call without one renders as nobody in particular.
async fn render(
    State(state): State<Arc<AppState>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Result<Response, ErrorResponse> {
    let spec: RenderSpec = parse(&body)?;
    let account = tailpdf_shared::messages::sync_render_account(query.as_deref());
    let _admitted = state.admit(&account, Purpose::Sync).ok_or_else(|| full(&state))?;
    let who = Requester::new(&account, Lane::Sync);
    let rendered = state
        .runner
        .engine
        .render_for(&spec, &who)
        .await
        .map_err(|e| ErrorResponse(e.to_api_error()))?;
    state.metrics.rendered(&rendered);
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/pdf")),
            (
                header::HeaderName::from_static("x-render-duration-ms"),
                HeaderValue::from(rendered.duration.as_millis() as u64),
            ),
        ],
        rendered.pdf,
    )
        .into_response())
}

/// Push mode: the job is taken (or found here, or refused as busy) and the answer given at
/// once; see [`super::takes`].
async fn take(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Response, ErrorResponse> {
    let TakeRequest { job, start } = parse(&body)?;
    Ok(axum::Json(super::takes::take(&state, job, start)).into_response())
}

/// A job held to its end: the answer is how it ended. The Worker takes jobs instead
/// (`POST /jobs/take`); this stays for callers that want one call for the whole job.
async fn jobs(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Response, ErrorResponse> {
    let message: RenderJobMessage = parse(&body)?;
    let admitted = state.admit(&message.account, Purpose::Job).ok_or_else(|| full(&state))?;
    let attempt = message.attempt.max(1);
    // The job runs to its end even if the edge's connection drops (the edge restarted, or
    // gave up waiting): its events reach the edge on their own, so dropping it here would
    // leave a job half done that no one delivers again.
    let run = tokio::spawn({
        let state = state.clone();
        async move {
            let _admitted = admitted;
            state.runner.run(message, attempt).await
        }
    });
    let end = run.await.map_err(|e| {
        tracing::error!(error = %e, "a job's task failed");
        ErrorResponse(ApiError::unavailable("The job did not end here; deliver it again.", 5))
    })?;
    match end {
        JobEnd::Reported(outcome) => Ok(axum::Json(outcome).into_response()),
        JobEnd::Gone => Ok(axum::Json(serde_json::json!({"status": "gone"})).into_response()),
        JobEnd::Retry { reason, delay } => Err(ErrorResponse(ApiError::unavailable(
            format!("The job did not end here ({reason}); deliver it again."),
            super::runner::delay_secs(delay),
        ))),
    }
}

/// Push mode for a batch: its jobs run as groups; the answer says which ended. The request
/// holds one place of the capacity, though its groups (and the documents of a group that fell
/// back to one by one) wait for tabs together, so while it runs it may hold every tab.
async fn group(State(state): State<Arc<AppState>>, body: Bytes) -> Result<Response, ErrorResponse> {
    let request: GroupRequest = parse(&body)?;
    // A group is one batch's, so one account's.
    let account = request.jobs.first().map(|j| j.account.clone()).unwrap_or_default();
    let admitted = state.admit(&account, Purpose::Job).ok_or_else(|| full(&state))?;
    let jobs: Vec<(RenderJobMessage, u32)> = request
        .jobs
        .into_iter()
        .map(|message| {
            let attempt = message.attempt.max(1);
            (message, attempt)
        })
        .collect();
    let ids: Vec<_> = jobs.iter().map(|(m, _)| m.job_id.clone()).collect();
    // As for `POST /jobs`: the jobs run to their ends even if the edge stops waiting.
    let run = tokio::spawn({
        let state = state.clone();
        async move {
            let _admitted = admitted;
            state.runner.run_group(jobs).await
        }
    });
    let ends = run.await.map_err(|e| {
        tracing::error!(error = %e, "a group's task failed");
        ErrorResponse(ApiError::unavailable("The jobs did not end here; deliver them again.", 5))
    })?;
    let jobs = ids
        .into_iter()
        .zip(ends)
        .map(|(job_id, end)| match end {
            JobEnd::Reported(_) | JobEnd::Gone => GroupJobEnd::Ended { job_id },
            JobEnd::Retry { delay, .. } => {
                GroupJobEnd::Retry { job_id, delay_secs: super::runner::delay_secs(delay) }
            }
        })
        .collect();
    Ok(axum::Json(GroupAnswer { jobs }).into_response())
}

/// What answers while the engine starts (Chromium, the compiler, the warm-up: seconds, more on
/// a loaded machine): the probes at once, `/healthz` alive and `/readyz` not yet ready, and
/// every other call 503 with `Retry-After`, so that no probe or caller hangs on a socket that
/// accepts and never answers.
pub fn starting() -> Router {
    let unavailable = || async {
        ErrorResponse(ApiError::unavailable(
            "The renderer is starting: Chromium is not ready yet.",
            1,
        ))
    };
    Router::new()
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .route("/readyz", get(unavailable))
        .fallback(unavailable)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.runner.engine.is_ready().await && !state.is_closing() {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        ErrorResponse(ApiError::unavailable("Chromium is not ready.", 1)).into_response()
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let engine = &state.runner.engine;
    let ready = engine.ready_targets().await;
    let gauges = super::metrics::Gauges {
        load: engine.load(),
        places_in_use: state.places.in_use(),
        shared_tabs_idle: ready.0,
        spare_contexts: ready.1,
        tabs: engine.tabs(),
    };
    (
        [(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)],
        state.metrics.render(engine.stats(), gauges),
    )
        .into_response()
}
