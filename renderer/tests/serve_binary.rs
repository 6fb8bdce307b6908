//! The `tailpdf-renderer serve` binary as an operator runs it: configured by environment
//! variables, JSON logs that name the job and never a secret or a presigned signature, and a
//! clean exit 0 on SIGTERM.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::{
    process::{Command, Stdio},
    sync::{Arc, Mutex},
};

use axum::{
    body::Bytes, extract::State, http::StatusCode, routing::post, routing::put, Json, Router,
};
use serde_json::{json, Value};
use tailpdf_shared::{
    messages::{EventAck, RenderJobMessage, SecretUrl},
    JobEvent, JobId, JobStatus,
};

const BIN: &str = env!("CARGO_BIN_EXE_tailpdf-renderer");
const SECRET: &str = "never-log-this-secret";
const SIGNATURE: &str = "5ec1e7519a7u2e0f";

/// `tailpdf-renderer serve` as a child, configured by environment variables (one tab, JSON
/// logs, a cache of its own), its log read as it goes.
struct Serve {
    base: String,
    child: std::process::Child,
    log: std::thread::JoinHandle<String>,
    _cache: tempfile::TempDir,
}

impl Serve {
    async fn start(env: &[(&str, &str)]) -> Self {
        let serve = Self::spawn(env);
        common::wait_ready(&serve.base).await;
        serve
    }

    /// Started, not yet ready.
    fn spawn(env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cache = tempfile::tempdir().unwrap();
        let mut child = Command::new(BIN)
            .arg("serve")
            .env("TAILPDF_LISTEN", format!("127.0.0.1:{port}"))
            .env("TAILPDF_INTERNAL_SECRET", SECRET)
            .env("TAILPDF_TABS", "1")
            .env("TAILPDF_FONT_CACHE_DIR", cache.path())
            .env("TAILPDF_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
        let base = format!("http://127.0.0.1:{port}");
        Self { base, child, log, _cache: cache }
    }

    /// SIGTERM; it must exit 0. Its log, whole and as JSON lines.
    fn stop(mut self) -> (String, Vec<Value>) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert_eq!(self.child.wait().unwrap().code(), Some(0), "serve exits 0 on SIGTERM");
        let log = self.log.join().unwrap();
        let lines = log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (log, lines)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_jobs_without_secrets_and_exits_cleanly_on_sigterm() {
    // An edge that accepts every event, and an upload target that fails with 500 twice.
    let uploads = Arc::new(Mutex::new(0));
    let edge = Router::new()
        .route(
            "/internal/jobs/{id}/events",
            post(|Json(e): Json<JobEvent>| async move {
                Json(EventAck { applied: true, status: e.status() })
            }),
        )
        .route(
            "/bucket/a.pdf",
            put(|State(n): State<Arc<Mutex<u32>>>, _body: Bytes| async move {
                let mut n = n.lock().unwrap();
                *n += 1;
                if *n <= 2 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            }),
        )
        .with_state(uploads.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let edge_base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, edge).await.unwrap() });

    let serve = Serve::start(&[
        ("TAILPDF_EDGE_URL", &edge_base),
        ("TAILPDF_ALLOW_LOOPBACK", "true"),
        ("TAILPDF_LOG", "debug"),
    ])
    .await;
    let base = serve.base.clone();

    let job_id = JobId::generate();
    let spec = common::spec(json!({"content": "<p>logged</p>"}));
    let upload =
        format!("{edge_base}/bucket/a.pdf?X-Amz-Credential=AK&X-Amz-Signature={SIGNATURE}");
    let message = RenderJobMessage::new(job_id.clone(), "acct-42", SecretUrl::new(upload), &spec);
    let r =
        common::signed_post(&base, "/jobs", SECRET, &serde_json::to_vec(&message).unwrap()).await;
    assert_eq!(r.status(), 200);
    let outcome: Value = r.json().await.unwrap();
    assert_eq!(outcome["status"], JobStatus::Completed.as_str(), "{outcome}");
    assert_eq!(*uploads.lock().unwrap(), 3);

    let (log, lines) = serve.stop();
    assert!(!lines.is_empty(), "JSON logs expected:\n{log}");
    let ended = lines
        .iter()
        .find(|l| l["fields"]["message"] == "job ended")
        .unwrap_or_else(|| panic!("no 'job ended' line:\n{log}"));
    assert_eq!(ended["fields"]["outcome"], "completed");
    assert_eq!(ended["span"]["job_id"], job_id.as_str());
    assert_eq!(ended["span"]["account"], "acct-42");
    let retried =
        lines.iter().filter(|l| l["fields"]["message"] == "upload will be retried").count();
    assert_eq!(retried, 2, "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains(SIGNATURE), "a presigned signature reached the log:\n{log}");
    assert!(!log.contains(SECRET), "the internal secret reached the log:\n{log}");
}

/// A document's refused requests leave one line per render in serve's log (counts by reason,
/// the first few URLs, no query) and counts by reason in `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_logs_and_counts_the_requests_it_refuses() {
    // Production settings: no loopback for pages.
    let serve =
        Serve::start(&[("TAILPDF_FONTS_API_BASE", "http://127.0.0.1:9"), ("TAILPDF_LOG", "info")])
            .await;
    let base = serve.base.clone();

    let images: String = (1..=5)
        .map(|i| format!("<img src=\"http://10.0.0.{i}/a.png?token={SIGNATURE}\">"))
        .collect();
    let content = format!(
        "<p>refused</p>{images}<img src=\"http://127.0.0.1:9/b.png\"><img src=\"file:///etc/passwd\">"
    );
    let body = serde_json::to_vec(&json!({"content": content})).unwrap();
    let path = tailpdf_shared::messages::sync_render_path("acct-7");
    for _ in 0..2 {
        let r = common::signed_post(&base, &path, SECRET, &body).await;
        assert_eq!(r.status(), 200);
    }
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        "tailpdf_refused_requests_total{reason=\"blocked\"} 12",
        "tailpdf_refused_requests_total{reason=\"local_file\"} 2",
        "tailpdf_refused_requests_total{reason=\"timeout\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    let (log, lines) = serve.stop();
    let refused: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "requests of the document were refused or failed")
        .collect();
    assert_eq!(refused.len(), 2, "one line per render:\n{log}");
    let fields = &refused[0]["fields"];
    assert_eq!(fields["account"], "acct-7");
    assert_eq!(fields["not_loaded"], 7);
    assert_eq!(fields["reasons"], "blocked: 6, local_file: 1");
    let first = fields["first"].as_str().unwrap();
    // The first three as they came (the page asks for them at once), the private ones
    // without their query.
    assert_eq!(first.matches(" (blocked: ").count(), 3, "{first}");
    assert!(first.contains("http://10.0.0.") && first.contains("/a.png?<redacted>"), "{first}");
    assert!(first.ends_with("and 4 more"), "{first}");
    assert!(!log.contains(SIGNATURE), "a query reached the log:\n{log}");
}

#[test]
fn an_edge_url_with_a_path_is_refused_at_start() {
    // Internal calls are signed over their path: a base path would fail every event later.
    let out = Command::new(BIN)
        .arg("serve")
        .env("TAILPDF_INTERNAL_SECRET", SECRET)
        .env("TAILPDF_EDGE_URL", "https://edge.example.com/tailpdf")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TAILPDF_EDGE_URL") || stderr.contains("--edge-url"), "{stderr}");
    assert!(stderr.contains("origin only"), "{stderr}");
}

/// A Chromium slower to start than `--launch-timeout` (a wrapper that sleeps 3 s before it
/// execs it, against 2 s) is started again with twice the patience, not given up on; and
/// meanwhile the probes answer at once: `/healthz` 200, `/readyz` and every other call 503
/// with `Retry-After` and the error body. Before, nothing answered until Chromium was up (a
/// Kubernetes or Containers probe reads that as a dead instance), and a start longer than a
/// fixed 20 s failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_chromium_is_waited_for_while_the_probes_answer_at_once() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    // Chromium runs as another user where the renderer is root: it must read the wrapper.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let chromium = std::env::var("TAILPDF_CHROMIUM")
        .unwrap_or_else(|_| String::from("/usr/lib/chromium/chromium-headless-shell"));
    let wrapper = dir.path().join("slow-chromium");
    std::fs::write(&wrapper, format!("#!/bin/sh\nsleep 3\nexec {chromium} \"$@\"\n")).unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let serve = Serve::spawn(&[
        ("TAILPDF_CHROMIUM", wrapper.to_str().unwrap()),
        ("TAILPDF_LAUNCH_TIMEOUT", "2s"),
    ]);

    let client = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap();
    let started = Instant::now();
    let mut starting = 0;
    loop {
        assert!(started.elapsed() < Duration::from_secs(90), "never ready");
        let answer = client.get(format!("{}/readyz", serve.base)).send().await;
        let r = match answer {
            // Before the process listens.
            Err(e) if e.is_connect() => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => panic!("/readyz did not answer within 1 s while starting: {e}"),
            Ok(r) if r.status() == 200 => break,
            Ok(r) => r,
        };
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "1");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "service_unavailable", "{body}");
        assert!(body["message"].as_str().unwrap().contains("starting"), "{body}");
        if starting == 0 {
            let health = client.get(format!("{}/healthz", serve.base)).send().await.unwrap();
            assert_eq!(health.status(), 200, "alive while starting");
            let render = client
                .post(format!("{}/render", serve.base))
                .json(&json!({"content": "<p>x</p>"}))
                .send()
                .await
                .unwrap();
            assert_eq!(render.status(), 503, "a render while starting is refused at once");
            assert_eq!(render.json::<Value>().await.unwrap()["error"], "service_unavailable");
        }
        starting += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two tries at least: 2 s, then 3 s of sleep and the start itself.
    assert!(started.elapsed() > Duration::from_secs(3));
    assert!(starting >= 10, "answered {starting} times while starting");
    let (log, _) = serve.stop();
    assert!(log.contains("slow to start"), "the first, too slow start is in the log: {log}");
}
