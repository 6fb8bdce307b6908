//! `tailpdf-renderer serve` with real parts: Chromium, a real S3-compatible server (s3s-fs)
//! checking real SigV4 presigned URLs, a stand-in edge that verifies every signed event and
//! applies the shared state machine, and a stand-in of Cloudflare's Queues pull API.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::s3::S3;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    extract::{Path as UrlPath, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Json, Router,
};
use serde_json::{json, Value};
use tailpdf_e2e::queues::{self, PullQueue};
use tailpdf_renderer::service::ServeConfig;
use tailpdf_shared::{
    messages::{
        BatchRef, EventAck, GroupAnswer, GroupJobEnd, GroupRequest, JobOutcome, RenderJobMessage,
        SecretUrl, TakeRequest, TAKE_PATH,
    },
    signing::{sign_internal, verify_internal, INTERNAL_SIGNATURE_HEADER},
    trace::TraceParent,
    JobEvent, JobId, JobRecord, JobStatus, Timestamp,
};

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

async fn serve(app: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (base, tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }))
}

// ------------------------------------------------------- stand-in edge ----

/// Jobs and the `traceparent` each call for them carried.
type Traces = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Verifies each event's signature, applies the shared state machine, records what arrived.
#[derive(Clone, Default)]
struct Edge {
    jobs: Arc<Mutex<HashMap<String, JobRecord>>>,
    events: Arc<Mutex<Vec<(String, JobStatus, bool)>>>,
    specs: Arc<Mutex<HashMap<String, Value>>>,
    /// Answer 500 to this many event calls first.
    fail_first: Arc<Mutex<usize>>,
    /// The `traceparent` of each event call, by job.
    traces: Traces,
}

impl Edge {
    fn register(&self, id: &JobId) {
        let record = JobRecord::new(id.clone(), "acct", Timestamp::from_unix(now()).unwrap());
        self.jobs.lock().unwrap().insert(id.to_string(), record);
    }

    fn statuses(&self, id: &JobId) -> Vec<JobStatus> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(j, _, _)| j == id.as_str())
            .map(|(_, s, _)| *s)
            .collect()
    }

    fn record(&self, id: &JobId) -> JobRecord {
        self.jobs.lock().unwrap()[id.as_str()].clone()
    }
}

async fn edge_event(
    State(edge): State<Edge>,
    UrlPath(id): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers.get(INTERNAL_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    let signed = verify_internal(SECRET, signature, "POST", uri.path(), &body, now()).is_ok();
    let event: JobEvent = serde_json::from_slice(&body).unwrap();
    edge.events.lock().unwrap().push((id.clone(), event.status(), signed));
    let trace = headers.get("traceparent").and_then(|v| v.to_str().ok()).map(String::from);
    edge.traces.lock().unwrap().push((id.clone(), trace));
    if !signed {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    {
        let mut fail = edge.fail_first.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    }
    let mut jobs = edge.jobs.lock().unwrap();
    let Some(job) = jobs.get_mut(&id) else { return StatusCode::NOT_FOUND.into_response() };
    let t = job.apply(&event);
    Json(EventAck { applied: t.is_applied(), status: job.status }).into_response()
}

async fn edge_spec(
    State(edge): State<Edge>,
    UrlPath(id): UrlPath<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let signature = headers.get(INTERNAL_SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if verify_internal(SECRET, signature, "GET", uri.path(), b"", now()).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match edge.specs.lock().unwrap().get(&id) {
        Some(spec) => Json(spec.clone()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_edge() -> (Edge, String, tokio::task::JoinHandle<()>) {
    let edge = Edge::default();
    let app = Router::new()
        .route("/internal/jobs/{id}/events", post(edge_event))
        .route("/internal/jobs/{id}/spec", get(edge_spec))
        .with_state(edge.clone());
    let (base, task) = serve(app).await;
    (edge, base, task)
}

// ------------------------------------------------------------ the service ----

use common::serve::{serve_config, start_renderer, Renderer, SECRET};

async fn signed_post(base: &str, path: &str, body: &Value) -> reqwest::Response {
    common::signed_post(base, path, SECRET, &serde_json::to_vec(body).unwrap()).await
}

/// The same URL with one hex digit of its signature changed.
fn tamper(url: &str) -> String {
    let at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let first = &url[at..=at];
    let flipped = if first == "a" { "b" } else { "a" };
    format!("{}{flipped}{}", &url[..at], &url[at + 1..])
}

fn job(edge: &Edge, upload_url: &str, content: &str) -> RenderJobMessage {
    let id = JobId::generate();
    edge.register(&id);
    let spec = common::spec(json!({"content": content, "pdfOptions": {"format": "A4"}}));
    RenderJobMessage::new(id, "acct", SecretUrl::new(upload_url), &spec)
}

async fn push(renderer: &Renderer, message: &RenderJobMessage) -> (StatusCode, Value) {
    let r = signed_post(&renderer.base, "/jobs", &serde_json::to_value(message).unwrap()).await;
    let status = r.status();
    (status, r.json().await.unwrap())
}

// ------------------------------------------------------------------ tests ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_endpoints_require_a_valid_fresh_signature() {
    let (_edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;
    let client = reqwest::Client::new();
    let body = serde_json::to_vec(&json!({"content": "<p>x</p>"})).unwrap();
    let cases: [(&str, Option<String>); 4] = [
        ("unsigned", None),
        ("wrong secret", Some(sign_internal("other", now(), "POST", "/render", &body))),
        ("stale", Some(sign_internal(SECRET, now() - 400, "POST", "/render", &body))),
        ("other path", Some(sign_internal(SECRET, now(), "POST", "/jobs", &body))),
    ];
    for (name, signature) in cases {
        let mut request = client.post(format!("{}/render", renderer.base)).body(body.clone());
        if let Some(s) = signature {
            request = request.header(INTERNAL_SIGNATURE_HEADER, s);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401, "{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized", "{name}");
        assert!(v["message"].as_str().unwrap().contains("X-TailPDF-Internal"), "{name}");
    }
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(
            client.get(format!("{}{probe}", renderer.base)).send().await.unwrap().status(),
            200
        );
    }
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_render_returns_the_pdf_or_a_clear_error() {
    let (_edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;
    let r = signed_post(
        &renderer.base,
        "/render",
        &json!({"content": "<h1 class=\"text-3xl\">Sync</h1>", "pdfOptions": {"format": "A5"}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/pdf");
    let ms: u64 = r.headers()["x-render-duration-ms"].to_str().unwrap().parse().unwrap();
    assert!(ms > 0 && ms < 20_000);
    let pdf = r.bytes().await.unwrap();
    assert!(tailpdf_e2e::pdf::poppler("pdftotext", &pdf, &[]).contains("Sync"));

    for (body, status, needle) in [
        (json!({"content": "x", "bogus": 1}), 400, "unknown field"),
        (json!({"content": "x", "pdfOptions": {"format": "Z1"}}), 400, "pdfOptions.format"),
        (json!({"content": "<script>for(;;){}</script>"}), 500, "did not finish within"),
    ] {
        let r = signed_post(&renderer.base, "/render", &body).await;
        assert_eq!(r.status().as_u16(), status, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["message"].as_str().unwrap().contains(needle), "{v}");
    }
    let metrics =
        reqwest::get(format!("{}/metrics", renderer.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tailpdf_renders_total{outcome=\"ok\"} 1"), "{metrics}");
    assert!(metrics.contains("tailpdf_render_duration_seconds_count 1"), "{metrics}");
    renderer.stop().await;
}

/// What a costly or unprintable document gets: a 400 naming the field or the limit, or a
/// `render_failed` that says the print failed or the deadline passed; never the page-range
/// validation error Chromium's refusals used to become.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn costly_documents_end_early_and_say_why() {
    let (_edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |c| c.engine.limits.pages = 3)).await;
    let template = |t: &str| {
        json!({"content": "<p>body</p>", "pdfOptions": {"displayHeaderFooter": true,
            "headerTemplate": t, "margin": {"top": "20mm"}}})
    };
    let nested = format!("{}deep", "<div>".repeat(100_000));
    let pages: String =
        (0..5).map(|i| format!("<div style=\"break-after:page\">{i}</div>")).collect();
    let cases = [
        (
            template("<style>@import url(https://fonts.example/a.css);</style><span>H</span>"),
            400,
            "`pdfOptions.headerTemplate` loads a stylesheet from a URL (@import)",
        ),
        (
            template("<link rel=stylesheet href=https://cdn.example/a.css><span>H</span>"),
            400,
            "`pdfOptions.headerTemplate` loads a stylesheet from a URL (<link rel=stylesheet>)",
        ),
        // The same @import, escaped past the lexical check: Chromium refuses the print.
        (
            template("<style>@\\69mport url(https://fonts.example/a.css);</style><span>H</span>"),
            500,
            "Render failed: Chromium could not print the document (Printing failed)",
        ),
        (
            json!({"content": pages, "pdfOptions": {"pageRanges": "9"}}),
            400,
            "`pdfOptions.pageRanges`: Page range exceeds page count.",
        ),
        (
            json!({"content": pages}),
            400,
            "The document is over a limit of the renderer: the PDF has more than 3 pages; the \
             limit is --max-pages.",
        ),
    ];
    for (body, status, message) in cases {
        let r = signed_post(&renderer.base, "/render", &body).await;
        let got = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(got, status, "{v}");
        let code = if status == 400 { "validation_error" } else { "render_failed" };
        assert_eq!(v["error"], code, "{v}");
        assert!(v["message"].as_str().unwrap().starts_with(message), "{v}");
    }
    // 100,000 nested elements: Chromium fails the print, or the deadline comes first on a
    // slower machine; a render failure that says which, either way.
    let started = std::time::Instant::now();
    let r = signed_post(&renderer.base, "/render", &json!({"content": nested})).await;
    assert_eq!(r.status(), 500);
    let v: Value = r.json().await.unwrap();
    let message = v["message"].as_str().unwrap();
    assert_eq!(v["error"], "render_failed", "{v}");
    assert!(
        message.contains("could not print the document")
            || message.contains("did not finish within 20s, the limit of --render-timeout"),
        "{v}"
    );
    assert!(!message.contains("pageRanges"), "{v}");
    assert!(started.elapsed() < Duration::from_secs(40), "it ended at the deadline");
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_warm_tabs_and_spare_contexts() {
    let (_edge, edge_base, _t) = start_edge().await;
    // Ready means the first renders find what later ones do: a used tab per slot (its first
    // print done; the guest tab's too), and a spare browser context per tab for documents
    // that run scripts.
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;
    let metrics =
        reqwest::get(format!("{}/metrics", renderer.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tailpdf_tabs_idle 3"), "{metrics}");
    assert!(metrics.contains("tailpdf_spare_contexts 2"), "{metrics}");
    // The warm-up is not a render of anyone's.
    assert!(metrics.contains("tailpdf_renders_total{outcome=\"ok\"} 0"), "{metrics}");
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_jobs_upload_to_s3_and_report_every_state_signed_and_in_order() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;

    // A plain presigned URL, and one that signs the content type.
    for (key, content_type) in [("plain.pdf", None), ("typed.pdf", Some("application/pdf"))] {
        let url = s3.presign(key, content_type, None);
        if content_type.is_some() {
            assert!(url.contains("content-type"), "the URL should sign the content type: {url}");
        }
        let mut message = job(&edge, &url, "<h1 class=\"text-2xl\">Stored</h1>");
        let trace = TraceParent::new_trace();
        message.traceparent = Some(trace.header());
        let (status, outcome) = push(&renderer, &message).await;
        assert_eq!(status, 200, "{outcome}");
        let outcome: JobOutcome = serde_json::from_value(outcome).unwrap();
        let JobOutcome::Completed { result, .. } = outcome else { panic!("{outcome:?}") };
        let stored = s3.object(key).expect("the object is in the bucket");
        assert_eq!(stored.len() as u64, result.file_size_bytes);
        assert!(tailpdf_e2e::pdf::poppler("pdftotext", &stored, &[]).contains("Stored"));
        assert_eq!(
            edge.statuses(&message.job_id),
            [JobStatus::Processing, JobStatus::Uploading, JobStatus::Completed]
        );
        assert!(edge.events.lock().unwrap().iter().all(|(_, _, signed)| *signed));
        // Each event comes on behalf of the job's trace, as a span of its own.
        let traces: Vec<TraceParent> = edge
            .traces
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| id == message.job_id.as_str())
            .map(|(_, t)| TraceParent::parse(t.as_deref().unwrap()).unwrap())
            .collect();
        assert_eq!(traces.len(), 3);
        assert!(traces.iter().all(|t| t.trace_id() == trace.trace_id() && *t != trace));
        let record = edge.record(&message.job_id);
        assert_eq!(record.status, JobStatus::Completed);
        assert_eq!(record.result, Some(result));
    }

    // A tampered signature and an expired URL: final failures, in the seed's words.
    let tampered = tamper(&s3.presign("tampered.pdf", None, None));
    let expired = s3.presign("expired.pdf", None, Some(now() - 3600));
    for (name, url) in [("tampered", tampered), ("expired", expired)] {
        let message = job(&edge, &url, "<p>x</p>");
        let (status, outcome) = push(&renderer, &message).await;
        assert_eq!(status, 200, "{name}");
        assert_eq!(outcome["status"], "failed", "{name}: {outcome}");
        assert_eq!(outcome["error_message"], "Upload failed: 403 Forbidden", "{name}");
        assert_eq!(
            edge.statuses(&message.job_id),
            [JobStatus::Processing, JobStatus::Uploading, JobStatus::Failed]
        );
        assert_eq!(
            edge.record(&message.job_id).error_message.as_deref(),
            Some("Upload failed: 403 Forbidden")
        );
    }
    assert!(s3.object("tampered.pdf").is_none() && s3.object("expired.pdf").is_none());
    renderer.stop().await;
}

/// `message` as document `index` of `batch`.
fn in_batch(mut message: RenderJobMessage, batch: &JobId, index: u32) -> RenderJobMessage {
    message.batch = Some(BatchRef { batch_id: batch.clone(), index });
    message
}

async fn metric(renderer: &Renderer, name: &str) -> String {
    let text =
        reqwest::get(format!("{}/metrics", renderer.base)).await.unwrap().text().await.unwrap();
    text.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_group_prints_its_batch_together_and_each_job_ends_on_its_own() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;
    let batch = JobId::generate();
    let mut jobs: Vec<RenderJobMessage> = (0..3)
        .map(|i| {
            let url = s3.presign(&format!("doc-{i}.pdf"), None, None);
            let content = format!("<h1 class=\"text-2xl font-bold\">Statement {i}</h1>");
            in_batch(job(&edge, &url, &content), &batch, i)
        })
        .collect();
    // A document whose upload the bucket refuses fails alone.
    let refused = tamper(&s3.presign("refused.pdf", None, None));
    jobs.push(in_batch(job(&edge, &refused, "<p>refused</p>"), &batch, 3));
    let request = GroupRequest { jobs: jobs.clone() };
    let r =
        signed_post(&renderer.base, "/jobs/group", &serde_json::to_value(&request).unwrap()).await;
    assert_eq!(r.status(), 200);
    let answer: GroupAnswer = r.json().await.unwrap();
    let ids: Vec<JobId> = jobs.iter().map(|j| j.job_id.clone()).collect();
    assert_eq!(
        answer.jobs,
        ids.iter().map(|id| GroupJobEnd::Ended { job_id: id.clone() }).collect::<Vec<_>>()
    );
    for i in 0..3 {
        let pdf = s3.object(&format!("doc-{i}.pdf")).expect("uploaded");
        let text = tailpdf_e2e::pdf::poppler("pdftotext", &pdf, &[]);
        assert!(text.contains(&format!("Statement {i}")), "{text}");
        for other in (0..3).filter(|o| *o != i) {
            assert!(!text.contains(&format!("Statement {other}")), "{text}");
        }
        assert_eq!(
            edge.statuses(&ids[i as usize]),
            [JobStatus::Processing, JobStatus::Uploading, JobStatus::Completed]
        );
    }
    assert_eq!(edge.record(&ids[3]).error_message.as_deref(), Some("Upload failed: 403 Forbidden"));
    // Printed as one group of four.
    assert_eq!(
        metric(&renderer, "tailpdf_grouped_documents_total").await,
        "tailpdf_grouped_documents_total 4"
    );
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_delivery_of_an_ended_job_uploads_and_reports_nothing_more() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;
    let message = job(&edge, &s3.presign("once.pdf", None, None), "<p>Once</p>");
    let (status, outcome) = push(&renderer, &message).await;
    assert_eq!(
        (status.as_u16(), outcome["status"].as_str()),
        (200, Some("completed")),
        "{outcome}"
    );
    std::fs::remove_file(s3.root.path().join("pdfs/once.pdf")).unwrap();

    // At-least-once: the same message again, after the job ended.
    let (status, outcome) = push(&renderer, &message).await;
    assert_eq!((status.as_u16(), outcome["status"].as_str()), (200, Some("gone")), "{outcome}");
    assert!(s3.object("once.pdf").is_none(), "not uploaded again");
    assert_eq!(
        edge.statuses(&message.job_id),
        [JobStatus::Processing, JobStatus::Uploading, JobStatus::Completed, JobStatus::Processing],
        "the repeat stops at the edge's answer to its first event"
    );
    renderer.stop().await;
}

#[derive(Clone, Default)]
struct Flaky {
    attempts: Arc<Mutex<Vec<(String, usize)>>>,
    stored: Arc<Mutex<Option<Vec<u8>>>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_retried_after_server_errors() {
    let flaky = Flaky::default();
    let app = Router::new()
        .route(
            "/bucket/{key}",
            put(|State(f): State<Flaky>, headers: HeaderMap, body: Bytes| async move {
                let ct = headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let n = {
                    let mut a = f.attempts.lock().unwrap();
                    a.push((ct, body.len()));
                    a.len()
                };
                if n <= 2 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                *f.stored.lock().unwrap() = Some(body.to_vec());
                StatusCode::OK
            }),
        )
        .with_state(flaky.clone());
    let (target, _t) = serve(app).await;
    let (edge, edge_base, _e) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;
    let message = job(&edge, &format!("{target}/bucket/a.pdf?sig=1"), "<p>retry me</p>");
    let (status, outcome) = push(&renderer, &message).await;
    assert_eq!(status, 200);
    assert_eq!(outcome["status"], "completed", "{outcome}");
    let attempts = flaky.attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 3);
    let size = outcome["result"]["file_size_bytes"].as_u64().unwrap() as usize;
    assert!(
        attempts.iter().all(|(ct, len)| ct == "application/pdf" && *len == size),
        "{attempts:?}"
    );
    let stored = flaky.stored.lock().unwrap().clone().unwrap();
    assert!(stored.starts_with(b"%PDF-") && stored.len() == size);
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_renderer_answers_503_at_once() {
    let (_edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |c| {
        c.engine.tabs = Some(1);
        c.queue_size = 0;
    }))
    .await;
    let slow = json!({"content": "<script>const t = Date.now(); while (Date.now() - t < 3000) {}</script>"});
    let base = renderer.base.clone();
    let busy = tokio::spawn(async move { signed_post(&base, "/render", &slow).await.status() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let r = signed_post(&renderer.base, "/render", &json!({"content": "<p>x</p>"})).await;
    assert!(started.elapsed() < Duration::from_secs(1), "answered at once");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "service_unavailable");
    assert_eq!(busy.await.unwrap(), 200);
    renderer.stop().await;
}

/// Found by the schema fuzzer: jobs (batch groups among them) holding every place made a sync
/// render, which someone waits for, answer 503. One place is kept for sync renders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_leave_a_place_for_a_sync_render() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |c| {
        c.engine.tabs = Some(1);
        c.queue_size = 1;
    }))
    .await;
    let slow = "<script>const t = Date.now(); while (Date.now() - t < 3000) {}</script>";
    let first = job(&edge, &s3.presign("slow.pdf", None, None), slow);
    let base = renderer.base.clone();
    let busy = tokio::spawn(async move {
        signed_post(&base, "/jobs", &serde_json::to_value(&first).unwrap()).await.status()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A second job: no place for it (it is delivered again later)...
    let second = job(&edge, &s3.presign("second.pdf", None, None), "<p>second</p>");
    let (status, _) = push(&renderer, &second).await;
    assert_eq!(status, 503);
    // ...but a sync render gets the place kept for it, and waits for the tab.
    let r = signed_post(&renderer.base, "/render", &json!({"content": "<p>sync</p>"})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(busy.await.unwrap(), 200);
    renderer.stop().await;
}

/// `POST /jobs/take`, as the Worker pushes jobs: `job`'s answer, asked with leave to start it
/// or not.
async fn take(renderer: &Renderer, job: &RenderJobMessage, start: bool) -> Value {
    let body = serde_json::to_value(TakeRequest { job: job.clone(), start }).unwrap();
    let r = signed_post(&renderer.base, TAKE_PATH, &body).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Push mode as the Worker drives it: a job is answered at once and runs on its own; asked
/// about again, it is never started twice; an account over its share waits here parked, up to
/// its share of the parking, and past that is told `busy`; another account's job still gets
/// in; once ended, the job is told `ended`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_jobs_are_answered_at_once_run_once_and_are_told_ended() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    // Places: a tab, a guest tab and one more; an account's jobs hold one of them.
    let renderer = start_renderer(serve_config(&edge_base, |c| {
        c.engine.tabs = Some(1);
        c.queue_size = 1;
    }))
    .await;
    let slow = "<script>const t = Date.now(); while (Date.now() - t < 3000) {}</script><p>slow</p>";
    let jobs: Vec<RenderJobMessage> = (0..3)
        .map(|i| job(&edge, &s3.presign(&format!("acct-{i}.pdf"), None, None), slow))
        .collect();
    let mut other = job(&edge, &s3.presign("other.pdf", None, None), "<p>other</p>");
    other.account = String::from("other");

    let started = Instant::now();
    assert_eq!(take(&renderer, &jobs[0], true).await, json!({"status": "taken"}));
    assert!(started.elapsed() < Duration::from_secs(2), "answered at once");
    assert_eq!(take(&renderer, &jobs[0], true).await, json!({"status": "running"}));
    assert_eq!(take(&renderer, &jobs[0], false).await, json!({"status": "running"}));
    assert_eq!(take(&renderer, &jobs[1], true).await, json!({"status": "taken"}), "parked");
    assert_eq!(take(&renderer, &jobs[2], true).await["status"], "busy", "its parking is full");
    assert_eq!(take(&renderer, &other, false).await, json!({"status": "unknown"}));
    assert_eq!(take(&renderer, &other, true).await, json!({"status": "taken"}));

    for (job, end) in [(&jobs[0], "ended"), (&jobs[1], "ended"), (&other, "ended")] {
        wait_for("the job to end", Duration::from_secs(60), || {
            edge.record(&job.job_id).status == JobStatus::Completed
        })
        .await;
        // The end is recorded just after the edge has it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(take(&renderer, job, true).await["status"], end);
        let once = [JobStatus::Processing, JobStatus::Uploading, JobStatus::Completed];
        assert_eq!(edge.statuses(&job.job_id), once, "run once");
    }
    assert!(s3.object("acct-2.pdf").is_none(), "the busy job was not taken");
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_specs_are_fetched_from_the_edge_and_events_retried_until_acknowledged() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;
    let mut message = job(&edge, &s3.presign("big.pdf", None, None), "unused");
    let big = format!("<p>{}</p><p>the end</p>", "word ".repeat(20_000));
    edge.specs.lock().unwrap().insert(message.job_id.to_string(), json!({"content": big}));
    message.spec = None;
    *edge.fail_first.lock().unwrap() = 2;
    let (status, outcome) = push(&renderer, &message).await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["status"], "completed", "{outcome}");
    assert!(tailpdf_e2e::pdf::poppler("pdftotext", &s3.object("big.pdf").unwrap(), &[])
        .contains("the end"));
    // Two refused deliveries of `processing`, then each state once.
    assert_eq!(
        edge.statuses(&message.job_id),
        [
            JobStatus::Processing,
            JobStatus::Processing,
            JobStatus::Processing,
            JobStatus::Uploading,
            JobStatus::Completed
        ]
    );
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_push_job_lets_it_finish() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let renderer = start_renderer(serve_config(&edge_base, |_| {})).await;
    let message = job(
        &edge,
        &s3.presign("graceful.pdf", None, None),
        "<script>const t = Date.now(); while (Date.now() - t < 2000) {}</script><p>finished</p>",
    );
    let base = renderer.base.clone();
    let m = message.clone();
    let in_flight = tokio::spawn(async move {
        let r = signed_post(&base, "/jobs", &serde_json::to_value(&m).unwrap()).await;
        (r.status(), r.json::<Value>().await.unwrap())
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    renderer.stop().await; // what SIGTERM triggers
    let (status, outcome) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(outcome["status"], "completed", "{outcome}");
    assert!(s3.object("graceful.pdf").is_some());
    assert_eq!(edge.record(&message.job_id).status, JobStatus::Completed);
}

// ------------------------------------------- stand-in of the Queues pull API ----

fn pull_mode(api: &str) -> impl FnOnce(&mut ServeConfig) + '_ {
    move |c: &mut ServeConfig| {
        c.pull = true;
        c.cf_api_base = api.parse().unwrap();
        c.cf_account_id = Some(queues::ACCOUNT_ID.into());
        c.cf_queue_id = Some(queues::QUEUE_ID.into());
        c.cf_api_token = Some(queues::API_TOKEN.into());
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_mode_takes_jobs_and_acks_them_after_the_edge_accepted_the_end() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let queue = PullQueue::start(None).await;
    let api = queue.api_base.clone();

    // A renderer that died with a lease: the message comes back after the lease expires,
    // with a higher attempt count.
    let orphan = job(&edge, &s3.presign("orphan.pdf", None, None), "<p>orphan</p>");
    let orphan_id = queue.send(&orphan);
    assert_eq!(queue.lease_and_vanish(1, Duration::from_millis(1500)), 1);
    let fresh = job(&edge, &s3.presign("fresh.pdf", None, None), "<p>fresh</p>");
    let fresh_id = queue.send(&fresh);
    let failing = job(&edge, &tamper(&s3.presign("x.pdf", None, None)), "<p>x</p>");
    let failing_id = queue.send(&failing);

    let renderer = start_renderer(serve_config(&edge_base, pull_mode(&api))).await;
    wait_for("three acks", Duration::from_secs(30), || queue.acked().len() == 3).await;
    assert!(s3.object("orphan.pdf").is_some() && s3.object("fresh.pdf").is_some());
    assert_eq!(edge.record(&orphan.job_id).status, JobStatus::Completed);
    assert_eq!(edge.record(&fresh.job_id).status, JobStatus::Completed);
    assert_eq!(
        edge.record(&failing.job_id).error_message.as_deref(),
        Some("Upload failed: 403 Forbidden")
    );
    let deliveries = queue.deliveries();
    assert!(
        deliveries.contains(&(orphan_id.clone(), 2)),
        "redelivered with attempts 2: {deliveries:?}"
    );
    assert!(deliveries.contains(&(fresh_id, 1)) && deliveries.contains(&(failing_id, 1)));
    assert!(queue.pending().is_empty());

    let metrics =
        reqwest::get(format!("{}/metrics", renderer.base)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tailpdf_queue_acks_total 3"), "{metrics}");
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_mode_prints_a_batch_s_documents_together_and_acks_each() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let queue = PullQueue::start(None).await;
    let api = queue.api_base.clone();
    let batch = JobId::generate();
    let mut sent = Vec::new();
    for i in 0..3 {
        let url = s3.presign(&format!("b-{i}.pdf"), None, None);
        let message =
            in_batch(job(&edge, &url, &format!("<p class=\"p-4\">Letter {i}</p>")), &batch, i);
        queue.send(&message);
        sent.push(message);
    }
    let single = job(&edge, &s3.presign("single.pdf", None, None), "<p>single</p>");
    queue.send(&single);
    let renderer = start_renderer(serve_config(&edge_base, pull_mode(&api))).await;
    wait_for("four acks", Duration::from_secs(30), || queue.acked().len() == 4).await;
    for (i, message) in sent.iter().enumerate() {
        assert_eq!(edge.record(&message.job_id).status, JobStatus::Completed);
        let pdf = s3.object(&format!("b-{i}.pdf")).unwrap();
        assert!(tailpdf_e2e::pdf::poppler("pdftotext", &pdf, &[]).contains(&format!("Letter {i}")));
    }
    assert!(s3.object("single.pdf").is_some());
    assert_eq!(
        metric(&renderer, "tailpdf_grouped_documents_total").await,
        "tailpdf_grouped_documents_total 3"
    );
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_mode_hands_back_unfinished_jobs_on_shutdown() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let queue = PullQueue::start(None).await;
    let api = queue.api_base.clone();
    let slow = job(
        &edge,
        &s3.presign("slow.pdf", None, None),
        "<script>const t = Date.now(); while (Date.now() - t < 15000) {}</script><p>slow</p>",
    );
    let slow_id = queue.send(&slow);
    let renderer = start_renderer(serve_config(&edge_base, |c| {
        pull_mode(&api)(c);
        c.grace_period = Duration::from_secs(1);
        c.engine.render_timeout = Duration::from_secs(30);
    }))
    .await;
    wait_for("the job to start", Duration::from_secs(10), || {
        edge.statuses(&slow.job_id).contains(&JobStatus::Processing)
    })
    .await;
    let stopping = Instant::now();
    renderer.stop().await;
    assert!(stopping.elapsed() < Duration::from_secs(20), "shutdown took {:?}", stopping.elapsed());
    // Not lost: handed back for immediate redelivery, never acknowledged.
    assert_eq!(queue.retried(), [(slow_id.clone(), 0)]);
    assert!(queue.acked().is_empty());
    assert_eq!(queue.pending(), [(slow_id, false)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_url_to_a_metadata_address_is_refused() {
    let (edge, edge_base, _t) = start_edge().await;
    let renderer =
        start_renderer(serve_config(&edge_base, |c| c.engine.allow_loopback = false)).await;
    let message = job(&edge, "https://169.254.169.254/latest/meta-data/x.pdf", "<p>x</p>");
    let (status, outcome) = push(&renderer, &message).await;
    assert_eq!(status, 200);
    assert_eq!(outcome["status"], "failed");
    let text = outcome["error_message"].as_str().unwrap();
    assert!(text.starts_with("Upload failed: Internal/private URLs not allowed"), "{text}");
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_mode_hands_back_with_a_delay_a_job_whose_end_the_edge_did_not_accept() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let queue = PullQueue::start(None).await;
    let api = queue.api_base.clone();
    *edge.fail_first.lock().unwrap() = usize::MAX; // the edge refuses every event for now
    let message = job(&edge, &s3.presign("later.pdf", None, None), "<p>later</p>");
    let id = queue.send(&message);
    let renderer = start_renderer(serve_config(&edge_base, |c| {
        pull_mode(&api)(c);
        c.event_retry_budget = Duration::from_secs(1);
    }))
    .await;
    wait_for("a retry", Duration::from_secs(20), || !queue.retried().is_empty()).await;
    let (retried, delay) = queue.retried()[0].clone();
    assert_eq!(retried, id);
    assert!(delay >= 1, "handed back with a delay, got {delay}");
    assert!(queue.acked().is_empty(), "never acknowledged before the edge accepted the end");
    // Once the edge answers again, the redelivered job ends and is acknowledged.
    *edge.fail_first.lock().unwrap() = 0;
    wait_for("the ack", Duration::from_secs(40), || queue.acked().len() == 1).await;
    assert_eq!(edge.record(&message.job_id).status, JobStatus::Completed);
    assert!(queue.deliveries().iter().any(|(m, attempts)| *m == id && *attempts >= 2));
    renderer.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_mode_pulls_again_as_soon_as_a_job_frees_its_place() {
    let s3 = S3::start();
    let (edge, edge_base, _t) = start_edge().await;
    let queue = PullQueue::start(None).await;
    let api = queue.api_base.clone();
    let first = job(&edge, &s3.presign("first.pdf", None, None), "<p>first</p>");
    let second = job(&edge, &s3.presign("second.pdf", None, None), "<p>second</p>");
    queue.send(&first);
    queue.send(&second);
    // Room for one job; an interval between pulls longer than the test may take.
    let renderer = start_renderer(serve_config(&edge_base, |c| {
        pull_mode(&api)(c);
        c.engine.tabs = Some(1);
        c.queue_size = 0;
        c.pull_interval = Duration::from_secs(120);
    }))
    .await;
    wait_for("both jobs", Duration::from_secs(60), || queue.acked().len() == 2).await;
    assert!(s3.object("first.pdf").is_some() && s3.object("second.pdf").is_some());
    assert_eq!(edge.record(&second.job_id).status, JobStatus::Completed);
    renderer.stop().await;
}
