//! The built Worker alone under `wrangler dev --local` (workerd with Miniflare's KV and
//! Queues), with a stand-in renderer that follows the internal protocol and a real webhook
//! receiver: the edge's own behaviour, including failures a real renderer cannot be made to
//! produce on demand. stack.rs runs it with the real renderer. Every public response is
//! checked against openapi.yaml too.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::{
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
    Json, Router,
};
use serde_json::{json, Value};
use tailpdf_e2e::{
    client::internal,
    contract::Contract,
    free_port, now,
    stack::{
        wait_until, Edge, EdgeOptions, Receiver, API_KEY as KEY_A, INTERNAL_SECRET as SECRET,
        WEBHOOK_SECRET,
    },
};
use tailpdf_shared::{
    job::RenderResult,
    messages::{GroupRequest, TakeAnswer, TakeRequest, TAKE_PATH},
    signing::{
        sign_internal, verify_internal, verify_tailpdf_signature, StandardWebhookKey,
        INTERNAL_SIGNATURE_HEADER,
    },
    JobEvent, Timestamp,
};

const KEY_B: &str = "account-b-key";
/// Read once: every public response of these tests is checked against it.
static CONTRACT: LazyLock<Contract> = LazyLock::new(Contract::load);

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// Jobs and the `traceparent` each call for them carried.
type Traces = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// The renderer's side of the internal protocol, without Chromium.
#[derive(Clone)]
struct StandIn {
    edge: Arc<Mutex<String>>,
    /// Every push: the job and the attempt number it came with.
    jobs: Arc<Mutex<Vec<(String, u32)>>>,
    /// Every push: the job and the `traceparent` its message carried.
    traces: Traces,
}

impl StandIn {
    /// The attempt numbers `job` was pushed with, in order.
    fn attempts(&self, job: &str) -> Vec<u32> {
        let jobs = self.jobs.lock().unwrap();
        jobs.iter().filter(|(j, _)| j == job).map(|(_, attempt)| *attempt).collect()
    }
}

/// Signed over the path and its query, as the renderer checks it.
fn signed(headers: &HeaderMap, method: &str, uri: &Uri, body: &[u8]) -> bool {
    let header = headers.get(INTERNAL_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    verify_internal(SECRET, header, method, path, body, now()).is_ok()
}

async fn report(edge: &str, job: &str, event: &JobEvent) -> Value {
    let path = format!("/internal/jobs/{job}/events");
    let body = serde_json::to_vec(event).unwrap();
    internal(edge, reqwest::Method::POST, &path, body).await.json()
}

/// As [`report`], on a task of the stand-in's own: false once the edge has gone (the test
/// ended).
async fn try_report(edge: &str, job: &str, event: &JobEvent) -> bool {
    let path = format!("/internal/jobs/{job}/events");
    let body = serde_json::to_vec(event).unwrap();
    let signature = sign_internal(SECRET, now(), "POST", &path, &body);
    let sent = client()
        .post(format!("{edge}{path}"))
        .header(INTERNAL_SIGNATURE_HEADER, signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    sent.is_ok_and(|r| r.status().is_success())
}

async fn stand_in_render(headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    if !signed(&headers, "POST", &uri, &body) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Whose render it is, so that the renderer can share its tabs fairly.
    if tailpdf_shared::messages::sync_render_account(uri.query()).is_empty() {
        let error = r#"{"error":"validation_error","message":"no account"}"#;
        return (StatusCode::BAD_REQUEST, [("content-type", "application/json")], error)
            .into_response();
    }
    let text = String::from_utf8_lossy(&body);
    if text.contains("slow-render") {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if text.contains("stalls-mid-answer") {
        return stalled("application/pdf", "%PDF-1.4\n");
    }
    ([("content-type", "application/pdf"), ("x-render-duration-ms", "7")], "%PDF-1.4 stand-in")
        .into_response()
}

/// `POST /jobs/take`: records each call's job and attempt; a job saying "never-renders" is
/// answered 503. Any other is taken: its events go to the edge on a task of their own, and
/// a later question about it is answered `ended`.
async fn stand_in_take(
    State(s): State<StandIn>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if !signed(&headers, "POST", &uri, &body) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let TakeRequest { job, .. } = serde_json::from_slice(&body).unwrap();
    let id = job.job_id.to_string();
    let asked_before = s.jobs.lock().unwrap().iter().any(|(j, _)| *j == id);
    s.jobs.lock().unwrap().push((id.clone(), job.attempt));
    s.traces.lock().unwrap().push((id.clone(), job.traceparent.clone()));
    if job.spec.as_ref().is_some_and(|spec| spec.content.contains("never-renders")) {
        return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]).into_response();
    }
    if asked_before {
        return Json(TakeAnswer::Ended).into_response();
    }
    let edge = s.edge.lock().unwrap().clone();
    tokio::spawn(async move {
        let at = || Timestamp::from_unix(now()).unwrap();
        let result = RenderResult {
            file_size_bytes: 45678,
            render_duration_ms: 850,
            upload_duration_ms: 120,
        };
        for event in [
            JobEvent::Processing { at: at() },
            JobEvent::Uploading { at: at() },
            JobEvent::Completed { at: at(), result },
        ] {
            if !try_report(&edge, &id, &event).await {
                return;
            }
        }
    });
    Json(TakeAnswer::Taken).into_response()
}

/// A 200 whose body starts with `first` and then never goes on.
fn stalled(content_type: &'static str, first: &'static str) -> Response {
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) });
    let body = Body::from_stream(futures::StreamExt::chain(first, futures::stream::pending()));
    ([("content-type", content_type)], body).into_response()
}

/// `POST /jobs/group`: records each job's attempt; a group with a document saying
/// "stalls-mid-answer" gets an answer that stops after its first bytes.
async fn stand_in_group(
    State(s): State<StandIn>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if !signed(&headers, "POST", &uri, &body) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let group: GroupRequest = serde_json::from_slice(&body).unwrap();
    let mut jobs = s.jobs.lock().unwrap();
    jobs.extend(group.jobs.iter().map(|job| (job.job_id.to_string(), job.attempt)));
    if String::from_utf8_lossy(&body).contains("stalls-mid-answer") {
        return stalled("application/json", "{\"jobs\":[");
    }
    (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]).into_response()
}

struct Stack {
    edge: String,
    hooks: Receiver,
    hook_url: String,
    stand_in: StandIn,
    _wrangler: Edge,
    _state: tempfile::TempDir,
}

async fn start(fail_first: usize) -> Stack {
    start_with(fail_first, |options| options).await
}

async fn start_with(fail_first: usize, edit: impl FnOnce(EdgeOptions) -> EdgeOptions) -> Stack {
    let hooks = Receiver::start(fail_first).await;
    let stand_in = StandIn { edge: Arc::default(), jobs: Arc::default(), traces: Arc::default() };
    let renderer = serve(
        Router::new()
            .route("/render", post(stand_in_render))
            .route(TAKE_PATH, post(stand_in_take))
            .route("/jobs/group", post(stand_in_group))
            .with_state(stand_in.clone()),
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let options = EdgeOptions::new(&renderer)
        .account(KEY_B, "b", None)
        .var("JOB_TTL_DONE_SECS", "60")
        .var("SYNC_TIMEOUT_SECS", "2")
        .var("WEBHOOK_TIMEOUT_SECS", "2");
    let mut edge = Edge::spawn(state.path(), free_port(), &edit(options));
    edge.wait_ready().await;
    *stand_in.edge.lock().unwrap() = edge.url.clone();
    Stack {
        edge: edge.url.clone(),
        hook_url: hooks.url.clone(),
        hooks,
        stand_in,
        _wrangler: edge,
        _state: state,
    }
}

async fn post_pdf(
    stack: &Stack,
    key: Option<&str>,
    body: &str,
    idempotency: Option<&str>,
) -> (u16, HeaderMap, Value) {
    let mut request = client()
        .post(format!("{}/pdf", stack.edge))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(k) = key {
        request = request.header("X-API-Key", k);
    }
    if let Some(i) = idempotency {
        request = request.header("Idempotency-Key", i);
    }
    let r = request.send().await.unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let bytes = r.bytes().await.unwrap();
    CONTRACT.check_response("/pdf", "post", status, &headers, &bytes);
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let headers = headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    (status, headers, value)
}

async fn get_job(stack: &Stack, key: &str, id: &str) -> (u16, Value) {
    let r = client()
        .get(format!("{}/jobs/{id}", stack.edge))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap();
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    let bytes = r.bytes().await.unwrap();
    CONTRACT.check_response("/jobs/{job_id}", "get", status, &headers, &bytes);
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn async_body(stack: &Stack, content: &str) -> String {
    json!({
        "content": content, "fonts": ["Inter:wght@400;600"], "async": true,
        "upload_url": "http://127.0.0.1:9/pdfs/a.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc",
        "webhook_url": stack.hook_url,
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_api_under_wrangler_dev() {
    let stack = start(0).await;

    // Every auth failure.
    for key in [None, Some("wrong-key")] {
        let (status, _, body) = post_pdf(&stack, key, r#"{"content":"x"}"#, None).await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(body["error"], "unauthorized");
        assert!(body["message"].as_str().unwrap().contains("X-API-Key"));
    }
    let r =
        client().get(format!("{}/jobs/01JFXYZ123456789ABCDEFGH", stack.edge)).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // Every kind of validation error, as {error, message}.
    let cases = [
        ("{", 400, "invalid_json"),
        ("[]", 400, "validation_error"),
        ("{}", 400, "validation_error"),
        (r#"{"content":"x","pdfOptions":{"landscape":"yes"}}"#, 400, "validation_error"),
        (r#"{"content":"x","fonts":["Inter:wght@9999"]}"#, 400, "validation_error"),
        (r#"{"content":"x","pdfOptions":{"format":"B9"}}"#, 400, "validation_error"),
        (r#"{"content":"x","async":true}"#, 400, "validation_error"),
        (
            r#"{"content":"x","async":true,"upload_url":"https://10.0.0.1/a.pdf"}"#,
            400,
            "url_not_allowed",
        ),
        (
            r#"{"content":"x","async":true,"upload_url":"ftp://example.com/a.pdf"}"#,
            400,
            "validation_error",
        ),
    ];
    for (body, status, code) in cases {
        let (s, _, v) = post_pdf(&stack, Some(KEY_A), body, None).await;
        assert_eq!((s, v["error"].as_str().unwrap()), (status, code), "{body}: {v}");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    // content over 1 MB is a 400 (as TailPDF); a body far beyond any valid one is a 413.
    let big = format!(r#"{{"content":"{}"}}"#, "x".repeat(1_100_000));
    let (s, _, v) = post_pdf(&stack, Some(KEY_A), &big, None).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (400, "validation_error"));
    let huge = format!(r#"{{"content":"x","pad":"{}"}}"#, " ".repeat(17 << 20));
    let (s, _, v) = post_pdf(&stack, Some(KEY_A), &huge, None).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (413, "payload_too_large"));

    // A sync render through the stand-in renderer.
    let (s, headers, body) =
        post_pdf(&stack, Some(KEY_A), r#"{"content":"<p>sync</p>"}"#, None).await;
    assert_eq!(s, 200);
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-render-duration-ms"], "7");
    assert_eq!(body, Value::String("%PDF-1.4 stand-in".into()));

    // A renderer that does not answer in time: 503 with Retry-After, after the sync deadline.
    let started = Instant::now();
    let (s, headers, body) =
        post_pdf(&stack, Some(KEY_A), r#"{"content":"<p>slow-render</p>"}"#, None).await;
    assert_eq!((s, body["error"].as_str().unwrap()), (503, "service_unavailable"), "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    // Async: 202 exactly as the seed, Location, pending → ... → completed, one webhook.
    let (s, headers, accepted) =
        post_pdf(&stack, Some(KEY_A), &async_body(&stack, "<p>async</p>"), Some("idem-1")).await;
    assert_eq!(s, 202, "{accepted}");
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        accepted,
        json!({"job_id": id, "status": "pending", "status_url": format!("/jobs/{id}")})
    );
    assert_eq!(headers["location"], format!("/jobs/{id}"));
    let (s, view) = get_job(&stack, KEY_A, &id).await;
    assert_eq!(s, 200);
    assert!(view["created_at"].as_str().unwrap().ends_with('Z'));

    // The same Idempotency-Key: the same job; with another body: 409.
    let (s, _, again) =
        post_pdf(&stack, Some(KEY_A), &async_body(&stack, "<p>async</p>"), Some("idem-1")).await;
    assert_eq!((s, again["job_id"].as_str()), (202, Some(id.as_str())));
    let (s, _, conflict) =
        post_pdf(&stack, Some(KEY_A), &async_body(&stack, "<p>other</p>"), Some("idem-1")).await;
    assert_eq!((s, conflict["error"].as_str().unwrap()), (409, "idempotency_conflict"));

    wait_until("the job to complete", Duration::from_secs(30), async || {
        get_job(&stack, KEY_A, &id).await.1["status"] == "completed"
    })
    .await;
    let (_, view) = get_job(&stack, KEY_A, &id).await;
    assert_eq!(
        view["result"],
        json!({"file_size_bytes": 45678, "render_duration_ms": 850, "upload_duration_ms": 120})
    );
    for field in ["created_at", "started_at", "completed_at"] {
        assert!(view[field].as_str().unwrap().ends_with('Z'), "{field}");
    }
    assert!(view["created_at"].as_str() <= view["started_at"].as_str());
    assert!(view["started_at"].as_str() <= view["completed_at"].as_str());
    assert_eq!(stack.stand_in.jobs.lock().unwrap().as_slice(), [(id.clone(), 1)], "pushed once");

    wait_until("the webhook", Duration::from_secs(20), async || !stack.hooks.all().is_empty())
        .await;
    let first = stack.hooks.all().remove(0);
    let (headers, body) = (first.headers, String::from_utf8(first.body).unwrap());
    assert_eq!(headers["user-agent"], "TailPDF-Webhook/1.0");
    assert_eq!(headers["x-tailpdf-event"], "render.completed");
    assert_eq!(headers["content-type"], "application/json");
    let signature = headers["x-tailpdf-signature"].to_str().unwrap();
    assert!(verify_tailpdf_signature(WEBHOOK_SECRET, body.as_bytes(), signature).is_ok());
    let key = StandardWebhookKey::from_secret(WEBHOOK_SECRET);
    let (wid, wts, wsig) = (
        headers["webhook-id"].to_str().unwrap(),
        headers["webhook-timestamp"].to_str().unwrap(),
        headers["webhook-signature"].to_str().unwrap(),
    );
    assert!(key.verify(wid, wts, wsig, body.as_bytes(), now()).is_ok());
    assert_eq!(wid, format!("msg_{id}_completed"));
    let payload: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(payload["event"], "render.completed");
    assert_eq!(payload["data"]["status"], "completed");

    // The same terminal event again: acknowledged, ignored, no second webhook.
    let result =
        RenderResult { file_size_bytes: 45678, render_duration_ms: 850, upload_duration_ms: 120 };
    let ack = report(
        &stack.edge,
        &id,
        &JobEvent::Completed { at: Timestamp::from_unix(now()).unwrap(), result },
    )
    .await;
    assert_eq!(ack, json!({"applied": false, "status": "completed"}));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.hooks.all().len(), 1);

    // Unsigned internal calls are refused.
    let r = client()
        .post(format!("{}/internal/jobs/{id}/events", stack.edge))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Account B cannot see A's job.
    let (s, v) = get_job(&stack, KEY_B, &id).await;
    assert_eq!((s, v["error"].as_str().unwrap()), (404, "not_found"));
    let (s, _) = get_job(&stack, KEY_A, &id).await;
    assert_eq!(s, 200);
    let (s, v) = get_job(&stack, KEY_A, "not-an-id").await;
    assert_eq!((s, v["error"].as_str().unwrap()), (404, "not_found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_receiver_gets_the_same_webhook_again_until_it_accepts() {
    let stack = start(2).await;
    let (s, _, accepted) =
        post_pdf(&stack, Some(KEY_A), &async_body(&stack, "<p>retry</p>"), None).await;
    assert_eq!(s, 202);
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    wait_until("three deliveries", Duration::from_secs(40), async || stack.hooks.all().len() >= 3)
        .await;
    let received = stack.hooks.all();
    assert_eq!(received.len(), 3);
    let ids: Vec<&str> = received.iter().map(|d| d.header("webhook-id")).collect();
    assert!(ids.iter().all(|i| *i == format!("msg_{id}_completed")), "{ids:?}");
    assert!(received.iter().all(|d| d.body == received[0].body), "the same body every time");
    wait_until("the delivery to be recorded", Duration::from_secs(10), async || {
        get_job(&stack, KEY_A, &id).await.1["webhook"]["attempts"] == 3
    })
    .await;
    let (_, view) = get_job(&stack, KEY_A, &id).await;
    assert_eq!(view["webhook"]["last_status"], 200);
    assert!(view["webhook"]["delivered_at"].as_str().unwrap().ends_with('Z'));
}

/// Signs an operator's call with the admin secret.
async fn admin_call(
    stack: &Stack,
    secret: &str,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let signature = sign_internal(secret, now(), method.as_str(), path, body.as_bytes());
    let r = client()
        .request(method, format!("{}{path}", stack.edge))
        .header(INTERNAL_SIGNATURE_HEADER, signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

const ADMIN_SECRET: &str = "e2e-admin-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_through_every_retry_gets_the_webhook_when_an_operator_replays_it() {
    // Down for the first four attempts, up from the fifth.
    let stack = start_with(4, |o| o.var("ADMIN_SECRET", ADMIN_SECRET)).await;
    let (s, _, accepted) =
        post_pdf(&stack, Some(KEY_A), &async_body(&stack, "<p>never</p>"), None).await;
    assert_eq!(s, 202);
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    let webhook_id = format!("msg_{id}_completed");
    // One delivery and three retries (WEBHOOK_RETRY_DELAYS=1,1,1), then the dead-letter queue,
    // whose consumer keeps it.
    let list = async || {
        admin_call(&stack, ADMIN_SECRET, reqwest::Method::GET, "/internal/dead-letters", "").await
    };
    wait_until("the dead letter", Duration::from_secs(60), async || {
        list().await.1.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    assert_eq!(stack.hooks.all().len(), 4, "no delivery after the last retry");
    let (_, view) = get_job(&stack, KEY_A, &id).await;
    assert_eq!(
        (view["webhook"]["attempts"].clone(), view["webhook"]["last_status"].clone()),
        (json!(4), json!(500))
    );
    assert!(view["webhook"].get("delivered_at").is_none());
    assert_eq!(view["status"], "completed", "the job itself is unaffected");

    let (status, listed) = list().await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let letter = &listed[0];
    assert_eq!(
        (letter["webhook_id"].as_str(), letter["job_id"].as_str()),
        (Some(webhook_id.as_str()), Some(id.as_str()))
    );
    assert_eq!(
        (letter["account"].clone(), letter["event"].clone(), letter["attempts"].clone()),
        (json!("e2e"), json!("render.completed"), json!(4))
    );
    // Only the operator: not the renderer's secret, not unsigned.
    let (status, _) =
        admin_call(&stack, SECRET, reqwest::Method::GET, "/internal/dead-letters", "").await;
    assert_eq!(status, 401);
    let r = client().get(format!("{}/internal/dead-letters", stack.edge)).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // The receiver is back: the replay delivers the same webhook, once.
    let body = json!({"webhook_ids": [webhook_id, "msg_unknown"]}).to_string();
    let (status, outcome) = admin_call(
        &stack,
        ADMIN_SECRET,
        reqwest::Method::POST,
        "/internal/dead-letters/replay",
        &body,
    )
    .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome, json!({"replayed": [webhook_id], "not_found": ["msg_unknown"]}));
    wait_until("the replayed delivery", Duration::from_secs(30), async || {
        stack.hooks.all().len() >= 5
    })
    .await;
    let received = stack.hooks.all();
    assert!(received.iter().all(|d| d.header("webhook-id") == webhook_id), "the same webhook-id");
    assert!(received.iter().all(|d| d.body == received[0].body), "the same body");
    wait_until("the delivery recorded", Duration::from_secs(10), async || {
        get_job(&stack, KEY_A, &id).await.1["webhook"]["attempts"] == 5
    })
    .await;
    let (_, view) = get_job(&stack, KEY_A, &id).await;
    assert_eq!(view["webhook"]["last_status"], 200);
    assert!(view["webhook"]["delivered_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(list().await.1, json!([]), "no longer dead-lettered");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.hooks.all().len(), 5, "replayed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_no_renderer_completes_fails_after_the_last_attempt_with_its_webhook() {
    // Three deliveries here (the default is 60); each carries its number, counted in the
    // message itself.
    let stack = start_with(0, |options| options.var("RENDER_MAX_ATTEMPTS", "3")).await;
    let (s, _, accepted) =
        post_pdf(&stack, Some(KEY_A), &async_body(&stack, "<p>never-renders</p>"), None).await;
    assert_eq!(s, 202);
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    wait_until("the job to fail", Duration::from_secs(60), async || {
        get_job(&stack, KEY_A, &id).await.1["status"] == "failed"
    })
    .await;
    let (_, view) = get_job(&stack, KEY_A, &id).await;
    assert_eq!(
        view["error_message"],
        "Render failed: the job was not rendered after 3 attempts (every renderer stayed busy); \
         submit it again.",
        "{view}"
    );
    let attempts = stack.stand_in.attempts(&id);
    assert_eq!(attempts, [1, 2, 3], "each delivery knows its number");
    wait_until("the render.failed webhook", Duration::from_secs(20), async || {
        !stack.hooks.for_job(&id).is_empty()
    })
    .await;
    let hook = stack.hooks.for_job(&id).remove(0);
    assert_eq!(hook.header("x-tailpdf-event"), "render.failed");
    assert_eq!(hook.header("webhook-id"), format!("msg_{id}_failed"));
    assert_eq!(hook.json()["data"]["error_message"], view["error_message"]);
}

/// Every wait on the renderer has a deadline, its answer's body included: a renderer that
/// sends an answer's head and then nothing more gets a sync render a 503 soon after
/// `SYNC_TIMEOUT_SECS`, and a batch's group given up after `PUSH_TIMEOUT_SECS`, tried again
/// and failed after the last attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_that_stops_mid_answer_meets_a_deadline() {
    let stack = start_with(0, |options| {
        options
            .var("RENDER_MAX_ATTEMPTS", "2")
            .var("RENDER_RETRY_DELAY_SECS", "1")
            .var("PUSH_TIMEOUT_SECS", "3")
    })
    .await;
    let started = Instant::now();
    let sync = json!({"content": "<p>stalls-mid-answer</p>"}).to_string();
    let (status, _, body) = post_pdf(&stack, Some(KEY_A), &sync, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "service_unavailable", "{body}");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(15), "answered after {waited:?} (deadline 2 s)");

    let batch = json!({
        "documents": [{
            "content": "<p>stalls-mid-answer</p>",
            "upload_url": "http://127.0.0.1:9/pdfs/a.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc",
        }],
    });
    let r = client()
        .post(format!("{}/pdf/batch", stack.edge))
        .header("X-API-Key", KEY_A)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let accepted: Value = r.json().await.unwrap();
    let id = accepted["jobs"][0]["job_id"].as_str().unwrap().to_owned();
    wait_until("the stalled document's job to fail", Duration::from_secs(90), async || {
        get_job(&stack, KEY_A, &id).await.1["status"] == "failed"
    })
    .await;
    let (_, view) = get_job(&stack, KEY_A, &id).await;
    let why = view["error_message"].as_str().unwrap();
    assert!(why.contains("after 2 attempts (no renderer could be reached)"), "{why}");
    let attempts = stack.stand_in.attempts(&id);
    assert_eq!(attempts, [1, 2], "each attempt given up at the deadline, then the next");
}

/// Per-account limits, counted by the `LIMITS` Durable Object under wrangler dev: a burst over
/// an account's requests per minute gets 429 with `Retry-After`, another account does not, and
/// the limit lets requests through again after that wait; an account's jobs in flight are
/// capped until one of them ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_over_its_limits_gets_429_with_retry_after_and_no_other_account_does() {
    const KEY_C: &str = "account-c-key";
    const KEY_D: &str = "account-d-key";
    let stack = start_with(0, |o| {
        o.account(KEY_C, "c", None)
            .limits("c", json!({"requests_per_minute": 20}))
            .account(KEY_D, "d", Some(WEBHOOK_SECRET))
            .limits("d", json!({"jobs_in_flight": 1}))
    })
    .await;

    // 25 at once (each a bad body, so nothing renders): 20 are let through to validation.
    let burst =
        futures::future::join_all((0..25).map(|_| post_pdf(&stack, Some(KEY_C), "{}", None)));
    let answers = burst.await;
    let refused: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    let through = answers.iter().filter(|(s, _, _)| *s == 400).count();
    assert_eq!((through, refused.len()), (20, 5), "{answers:?}");
    let mut wait = 0;
    for (_, headers, body) in &refused {
        assert_eq!(body["error"], "rate_limited");
        assert!(body["message"].as_str().unwrap().contains("20 requests a minute"), "{body}");
        let secs: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3).contains(&secs), "one request every 3 s: {secs}");
        wait = wait.max(secs);
    }
    for _ in 0..5 {
        let (status, _, _) = post_pdf(&stack, Some(KEY_B), "{}", None).await;
        assert_eq!(status, 400, "another account is not limited");
    }
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, _, _) = post_pdf(&stack, Some(KEY_C), "{}", None).await;
    assert_eq!(status, 400, "let through again after Retry-After");

    // One JSON line per request in the Worker's log, with the caller's trace id.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = client()
        .post(format!("{}/pdf", stack.edge))
        .header("X-API-Key", KEY_B)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    wait_until("the access line", Duration::from_secs(10), async || {
        stack._wrangler.log().contains(trace)
    })
    .await;
    let log = stack._wrangler.log();
    let line = log.lines().find(|l| l.contains(trace)).unwrap();
    let line: Value = serde_json::from_str(&line[line.find('{').unwrap()..]).unwrap();
    assert_eq!(
        line,
        json!({"method": "POST", "path": "/pdf", "status": 400, "error": "validation_error",
               "ms": line["ms"], "trace_id": trace}),
    );
    assert!(log.contains(r#""status":429,"error":"rate_limited""#), "the 429s are logged too");
    // The trace goes on with the job: its message carries a span of the same trace.
    let r = client()
        .post(format!("{}/pdf", stack.edge))
        .header("X-API-Key", KEY_B)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(async_body(&stack, "traced"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job_id = r.json::<Value>().await.unwrap()["job_id"].as_str().unwrap().to_owned();
    wait_until("the job at the renderer", Duration::from_secs(20), async || {
        stack.stand_in.traces.lock().unwrap().iter().any(|(id, _)| *id == job_id)
    })
    .await;
    let traces = stack.stand_in.traces.lock().unwrap().clone();
    let (_, sent) = traces.iter().find(|(id, _)| *id == job_id).unwrap();
    let sent = tailpdf_shared::trace::TraceParent::parse(sent.as_deref().unwrap()).unwrap();
    assert_eq!(sent.trace_id(), trace);
    assert!(!log.contains(KEY_C), "no key in the log");

    // One job in flight for d: its first job never renders, so it holds the slot.
    let (status, _, first) =
        post_pdf(&stack, Some(KEY_D), &async_body(&stack, "never-renders"), None).await;
    assert_eq!(status, 202, "{first}");
    let (status, headers, body) =
        post_pdf(&stack, Some(KEY_D), &async_body(&stack, "second"), None).await;
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limited")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("1 async jobs"), "{body}");
    assert!(headers.contains_key("retry-after"));
    let (status, _, _) = post_pdf(&stack, Some(KEY_B), &async_body(&stack, "b's own"), None).await;
    assert_eq!(status, 202, "another account's jobs are its own");
    // The first job ends (as a renderer reports it): its slot is free.
    let first_id = first["job_id"].as_str().unwrap();
    let failed =
        JobEvent::Failed { at: Timestamp::from_unix(now()).unwrap(), error_message: "gone".into() };
    assert_eq!(report(&stack.edge, first_id, &failed).await["applied"], true);
    let (status, _, body) = post_pdf(&stack, Some(KEY_D), &async_body(&stack, "third"), None).await;
    assert_eq!(status, 202, "{body}");
}

/// Not a check: the Worker's timings under wrangler dev, for BENCHMARKS.md (issue 14's bundle
/// item). Per round, a fresh wrangler dev: its start → first answer (polled every 100 ms), the
/// first POST /pdf, then 200 sequential sync POST /pdf through the stand-in renderer.
/// `cargo test -p tailpdf-e2e --test edge -- --ignored --nocapture worker_timings`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn worker_timings() {
    let body = json!({
        "content": "<p>timings</p>", "fonts": ["Inter:wght@400;600"],
        "pdfOptions": {"format": "A4", "margin": {"top": "10mm", "bottom": "0.5in"}},
    })
    .to_string();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for round in 1..=3 {
        let renderer = serve(Router::new().route("/render", post(stand_in_render))).await;
        let state = tempfile::tempdir().unwrap();
        // After the KV seeding: wrangler dev's start → its first answer (GET /).
        let mut edge = Edge::spawn(state.path(), free_port(), &EdgeOptions::new(&renderer));
        let started = Instant::now();
        edge.wait_ready().await;
        let ready = started.elapsed();
        let mut times = Vec::new();
        for _ in 0..201 {
            let t = Instant::now();
            let r = client()
                .post(format!("{}/pdf", edge.url))
                .header("X-API-Key", KEY_A)
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.bytes().await.unwrap();
            times.push(t.elapsed());
        }
        let first = times.remove(0);
        times.sort();
        println!(
            "round {round}: ready {:.0} ms, first POST /pdf {:.1} ms, then 200: p50 {:.2} ms, \
             p95 {:.2} ms",
            ms(ready),
            ms(first),
            ms(times[times.len() / 2]),
            ms(times[times.len() * 95 / 100]),
        );
    }
}
