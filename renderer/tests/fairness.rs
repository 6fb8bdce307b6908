//! Fair shares of one renderer between accounts, measured on the real service (Chromium,
//! s3s-fs for uploads, a stand-in edge and the stand-in of Queues' pull API) in each of its
//! modes: while account `a` keeps every tab busy with documents whose renders run into the
//! 30-s deadline, account `b`'s invoice must be served within twice its time alone plus one
//! render of a cheap document (the "slot" it may have to wait for). Its figures go into
//! BENCHMARKS.md ("Fair shares").
//!
//! The tests take turns (one lock): each measures times, and another's load would be noise.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{extract::State, routing::post, Json, Router};
use common::{
    s3::S3,
    serve::{serve_config, start_renderer, Renderer, SECRET},
};
use serde_json::json;
use tailpdf_e2e::queues::{self, PullQueue};
use tailpdf_shared::{
    messages::{
        sync_render_path, BatchRef, EventAck, GroupAnswer, GroupRequest, JobOutcome,
        RenderJobMessage, SecretUrl,
    },
    JobEvent, JobId, RenderSpec,
};

/// One test at a time: they measure.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The render deadline of these tests: the service's default.
const DEADLINE: Duration = Duration::from_secs(30);

/// A static page whose print takes minutes: large SVG filters on an A0 page. Its render runs
/// into the deadline; its compositor is then stopped.
fn costly() -> RenderSpec {
    let svg = "<svg width=\"3000\" height=\"4000\"><filter id=\"f\"><feTurbulence \
               baseFrequency=\"0.01\" numOctaves=\"8\"/><feGaussianBlur stdDeviation=\"40\"/>\
               <feMorphology radius=\"30\"/></filter><rect width=\"3000\" height=\"4000\" \
               filter=\"url(#f)\"/></svg>";
    common::spec(json!({"content": svg, "pdfOptions": {"format": "A0"}}))
}

/// The project's own invoice: the cheap document of an ordinary account.
fn invoice() -> RenderSpec {
    let html = include_str!("../../examples/invoice.html");
    common::spec(json!({"content": html, "pdfOptions": {"format": "A4", "printBackground": true}}))
}

// ------------------------------------------------------- stand-in edge ----

/// Accepts every event, and keeps each job's end (when it came, and the event).
#[derive(Clone, Default)]
struct Edge {
    ended: Arc<Mutex<HashMap<String, (Instant, JobEvent)>>>,
}

async fn start_edge() -> (Edge, String) {
    async fn event(
        State(edge): State<Edge>,
        axum::extract::Path(id): axum::extract::Path<String>,
        Json(event): Json<JobEvent>,
    ) -> Json<EventAck> {
        let status = event.status();
        if status.is_terminal() {
            edge.ended.lock().unwrap().entry(id).or_insert((Instant::now(), event));
        }
        Json(EventAck { applied: true, status })
    }
    let edge = Edge::default();
    let app =
        Router::new().route("/internal/jobs/{id}/events", post(event)).with_state(edge.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (edge, base)
}

// ------------------------------------------------------------ the modes ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sync,
    Push,
    Pull,
}

/// A renderer of two tabs (and one guest tab) in one mode, with what feeds it.
struct Stack {
    mode: Mode,
    renderer: Renderer,
    edge: Edge,
    s3: S3,
    queue: Option<PullQueue>,
}

/// How one render of an account went: its time end to end, and the render's own.
#[derive(Debug, Clone, Copy)]
struct Served {
    took: Duration,
    render: Duration,
    ok: bool,
}

impl Stack {
    async fn start(mode: Mode) -> Self {
        let (edge, edge_base) = start_edge().await;
        let queue = if mode == Mode::Pull { Some(PullQueue::start(None).await) } else { None };
        let cfg = serve_config(&edge_base, |c| {
            c.engine.render_timeout = DEADLINE;
            c.engine.tabs = Some(2);
            c.engine.guest_tabs = 1;
            // Six places: one account holds at most four, three of them jobs.
            c.queue_size = 3;
            if let Some(q) = &queue {
                c.pull = true;
                c.cf_api_base = q.api_base.parse().unwrap();
                c.cf_account_id = Some(queues::ACCOUNT_ID.into());
                c.cf_queue_id = Some(queues::QUEUE_ID.into());
                c.cf_api_token = Some(queues::API_TOKEN.into());
                c.pull_interval = Duration::from_millis(50);
            }
        });
        let renderer = start_renderer(cfg).await;
        Self { mode, renderer, edge, s3: S3::start(), queue }
    }

    fn job(&self, account: &str, spec: &RenderSpec) -> RenderJobMessage {
        let id = JobId::generate();
        let url = self.s3.presign(&format!("{id}.pdf"), None, None);
        RenderJobMessage::new(id, account, SecretUrl::new(url), spec)
    }

    /// One document of `account`'s, as the stack's mode delivers it, to its end.
    async fn serve(&self, account: &str, spec: &RenderSpec) -> Served {
        self.serve_in(self.mode, account, spec).await
    }

    /// One document of `account`'s, as `mode` delivers it (sync, or the stack's jobs).
    async fn serve_in(&self, mode: Mode, account: &str, spec: &RenderSpec) -> Served {
        let started = Instant::now();
        match mode {
            Mode::Sync => {
                let body = serde_json::to_vec(spec).unwrap();
                let path = sync_render_path(account);
                let r = common::signed_post(&self.renderer.base, &path, SECRET, &body).await;
                let ok = r.status() == 200;
                let render = r
                    .headers()
                    .get("x-render-duration-ms")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .map_or(Duration::ZERO, Duration::from_millis);
                let _ = r.bytes().await;
                Served { took: started.elapsed(), render, ok }
            }
            Mode::Push => {
                let body = serde_json::to_vec(&self.job(account, spec)).unwrap();
                let r = common::signed_post(&self.renderer.base, "/jobs", SECRET, &body).await;
                assert_eq!(r.status(), 200, "a push job was refused");
                let outcome: JobOutcome = r.json().await.unwrap();
                let (ok, render) = match outcome {
                    JobOutcome::Completed { result, .. } => {
                        (true, Duration::from_millis(result.render_duration_ms))
                    }
                    JobOutcome::Failed { .. } => (false, Duration::ZERO),
                };
                Served { took: started.elapsed(), render, ok }
            }
            Mode::Pull => {
                let job = self.job(account, spec);
                self.queue.as_ref().unwrap().send(&job);
                self.ended(&job.job_id, started).await
            }
        }
    }

    /// When the stand-in edge saw `id` end.
    async fn ended(&self, id: &JobId, started: Instant) -> Served {
        let limit = Instant::now() + DEADLINE * 4;
        loop {
            if let Some((at, event)) = self.edge.ended.lock().unwrap().get(id.as_str()).cloned() {
                let (ok, render) = match event {
                    JobEvent::Completed { result, .. } => {
                        (true, Duration::from_millis(result.render_duration_ms))
                    }
                    _ => (false, Duration::ZERO),
                };
                return Served { took: at - started, render, ok };
            }
            assert!(Instant::now() < limit, "job {id} never ended");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `n` of `account`'s documents, one after the other.
    async fn series(&self, account: &str, spec: &RenderSpec, n: usize) -> Vec<Served> {
        self.series_in(self.mode, account, spec, n).await
    }

    async fn series_in(
        &self,
        mode: Mode,
        account: &str,
        spec: &RenderSpec,
        n: usize,
    ) -> Vec<Served> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let served = self.serve_in(mode, account, spec).await;
            assert!(served.ok, "{account}'s document failed");
            out.push(served);
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        out
    }

    /// A gauge or counter of `/metrics`.
    async fn gauge(&self, name: &str) -> u64 {
        let text = reqwest::get(format!("{}/metrics", self.renderer.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = text.lines().find(|l| l.split(' ').next() == Some(name));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }
}

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

// ---------------------------------------------------------------- tests ----

/// Account `a` keeps every tab busy with renders that run 30 s, with more of its renders
/// waiting (`flood` of them at once); account `b`'s invoices meanwhile.
async fn a_flood_does_not_hold_up_another_account(mode: Mode, flood: usize) {
    let _serial = SERIAL.lock().await;
    let stack = Arc::new(Stack::start(mode).await);
    let (invoice, costly) = (invoice(), costly());
    // `b` alone: its time end to end, and a render of its invoice (one slot's wait).
    stack.serve("b", &invoice).await;
    let alone = stack.series("b", &invoice, 5).await;
    let alone_took = median(alone.iter().map(|s| s.took).collect());
    let slot = median(alone.iter().map(|s| s.render).collect());

    let flooded = Instant::now();
    let floods: Vec<_> = (0..flood)
        .map(|_| {
            let (stack, costly) = (stack.clone(), costly.clone());
            tokio::spawn(async move { stack.serve("a", &costly).await })
        })
        .collect();
    // Work-conserving: `a` alone has every tab.
    let started = Instant::now();
    while stack.gauge("tailpdf_tabs_busy").await < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "a's renders never took both tabs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.gauge("tailpdf_tabs_busy").await, 2, "every tab is a's");
    assert_eq!(stack.gauge("tailpdf_accounts_active").await, 1);

    let during = stack.series("b", &invoice, 5).await;
    let finished_within = flooded.elapsed();
    assert!(finished_within < DEADLINE, "b's invoices ran while a held the tabs");
    for flood in floods {
        let served = flood.await.unwrap();
        assert!(!served.ok && served.took >= DEADLINE, "a's renders ran into the deadline");
    }
    let during_took: Vec<Duration> = during.iter().map(|s| s.took).collect();
    let bound = alone_took * 2 + slot;
    let (mid, worst) = (median(during_took.clone()), *during_took.iter().max().unwrap());
    println!(
        "fairness {mode:?}: b alone {} (render {}), during a's flood median {} worst {} \
         (ratio {:.2}), bound {}; every sample: {:?}",
        ms(alone_took),
        ms(slot),
        ms(mid),
        ms(worst),
        mid.as_secs_f64() / alone_took.as_secs_f64(),
        ms(bound),
        during_took.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
    );
    assert!(mid <= bound, "{mode:?}: b waited {} against a bound of {}", ms(mid), ms(bound));
    assert!(worst <= bound * 2, "{mode:?}: one of b's invoices took {}", ms(worst));
    // The deadline ended a's prints, wherever they ran: their compositors (chromium) or
    // their page processes (the headless shell) stopped, so no core stays busy with them.
    let stopped = stack.gauge("tailpdf_print_compositors_stopped_total").await
        + stack.gauge("tailpdf_print_pages_stopped_total").await;
    assert!(stopped >= 1, "no abandoned print was stopped");
    chromium_settles().await;
}

/// Chromium (every process under this test's) goes quiet within a few seconds: less than a
/// fifth of a core over a second, as an idle renderer is.
async fn chromium_settles() {
    let me = std::process::id();
    let busy = |before: &std::collections::BTreeMap<String, f64>| {
        let spent = tailpdf_renderer::measure::cpu_between(
            before,
            &tailpdf_renderer::measure::cpu_by_kind(me),
        );
        spent.iter().filter(|(kind, _)| kind.as_str() != "host").map(|(_, s)| s).sum::<f64>()
    };
    let mut last = 0.0;
    for _ in 0..10 {
        let before = tailpdf_renderer::measure::cpu_by_kind(me);
        tokio::time::sleep(Duration::from_secs(1)).await;
        last = busy(&before);
        if last < 0.2 {
            return;
        }
    }
    panic!("Chromium still used {last:.2} of a core 10 s after every print was abandoned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_renders_of_another_account_pass_a_flood() {
    a_flood_does_not_hold_up_another_account(Mode::Sync, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_jobs_of_another_account_pass_a_flood() {
    a_flood_does_not_hold_up_another_account(Mode::Push, 3).await;
}

/// In pull mode `a`'s backlog stands before `b`'s job in the queue: more than `a`'s share of
/// places (three jobs), so two are parked and pulling goes on past them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_jobs_of_another_account_pass_a_flood() {
    a_flood_does_not_hold_up_another_account(Mode::Pull, 5).await;
}

/// One account alone loses nothing to the sharing: the same renders from one account go as
/// fast as from three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_alone_has_the_whole_renderer() {
    let _serial = SERIAL.lock().await;
    let stack = Arc::new(Stack::start(Mode::Sync).await);
    let invoice = invoice();
    stack.serve("warm", &invoice).await;
    // Three clients at once (one account's share of places), 12 invoices each.
    let run = |accounts: [&'static str; 3]| {
        let (stack, invoice) = (stack.clone(), invoice.clone());
        async move {
            let started = Instant::now();
            let clients = accounts.map(|account| {
                let (stack, invoice) = (stack.clone(), invoice.clone());
                tokio::spawn(async move {
                    for _ in 0..12 {
                        assert!(stack.serve(account, &invoice).await.ok);
                    }
                })
            });
            for c in clients {
                c.await.unwrap();
            }
            36.0 / started.elapsed().as_secs_f64()
        }
    };
    let mut ratios = Vec::new();
    for _ in 0..2 {
        let one = run(["a", "a", "a"]).await;
        let three = run(["a", "b", "c"]).await;
        ratios.push(one / three);
        println!("work-conserving: one account {one:.1} PDF/s, three accounts {three:.1} PDF/s");
    }
    let ratio = ratios.iter().sum::<f64>() / ratios.len() as f64;
    println!("work-conserving: one account's throughput / three accounts' = {ratio:.2}");
    assert!(ratio > 0.8, "one account alone got {ratio:.2} of what three accounts got");
}

/// A 1,000-document batch of `a`'s (pushed as the Worker pushes it: groups of 50, here two at
/// a time) holds up `b`'s single job by no more than one group's print, and `a`'s own sync
/// render does not wait behind it: the time it spends before its render starts (its time end
/// to end less the render's own) grows by less than one render of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holds_up_no_single_document() {
    let _serial = SERIAL.lock().await;
    let stack = Arc::new(Stack::start(Mode::Push).await);
    let invoice = invoice();
    let group = |account: &str, n: usize| {
        let batch_id = JobId::generate();
        let jobs: Vec<RenderJobMessage> = (0..n)
            .map(|i| {
                let mut job = stack.job(account, &invoice);
                job.batch = Some(BatchRef { batch_id: batch_id.clone(), index: i as u32 });
                job
            })
            .collect();
        serde_json::to_vec(&GroupRequest { jobs }).unwrap()
    };
    let base = stack.renderer.base.clone();
    let send = move |body: Vec<u8>| {
        let base = base.clone();
        async move {
            let r = common::signed_post(&base, "/jobs/group", SECRET, &body).await;
            assert_eq!(r.status(), 200);
            r.json::<GroupAnswer>().await.unwrap().jobs.len()
        }
    };
    // One group's time: twenty invoices printed together, alone.
    send(group("c", 20)).await;
    let started = Instant::now();
    send(group("c", 20)).await;
    let group_time = started.elapsed();
    stack.serve("b", &invoice).await;
    let b_alone = median(stack.series("b", &invoice, 3).await.iter().map(|s| s.took).collect());
    let a_alone_runs = stack.series_in(Mode::Sync, "a", &invoice, 3).await;
    let a_alone = median(a_alone_runs.iter().map(|s| s.took).collect());
    let slot = median(a_alone_runs.iter().map(|s| s.render).collect());
    // What a render's time end to end has besides the render: the request, and any wait.
    let besides =
        |runs: &[Served]| median(runs.iter().map(|s| s.took.saturating_sub(s.render)).collect());
    let a_wait_alone = besides(&a_alone_runs);

    // a's batch: 20 requests of 50, two at a time.
    let bodies: Vec<Vec<u8>> = (0..20).map(|_| group("a", 50)).collect();
    let bodies = Arc::new(Mutex::new(bodies));
    let batch_started = Instant::now();
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (bodies, send) = (bodies.clone(), send.clone());
            tokio::spawn(async move {
                let mut done = 0;
                loop {
                    let Some(body) = bodies.lock().unwrap().pop() else { break };
                    done += send(body).await;
                }
                done
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut b_during = Vec::new();
    let mut a_during = Vec::new();
    for _ in 0..3 {
        b_during.push(stack.serve("b", &invoice).await.took);
        a_during.push(stack.serve_in(Mode::Sync, "a", &invoice).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let still_running = !bodies.lock().unwrap().is_empty();
    let mut jobs = 0;
    for s in senders {
        jobs += s.await.unwrap();
    }
    let batch_took = batch_started.elapsed();
    assert_eq!(jobs, 1000);
    assert!(still_running, "the single documents were measured while the batch ran");
    let ended =
        stack.edge.ended.lock().unwrap().values().map(|(_, e)| e.status()).collect::<Vec<_>>();
    let completed = ended.iter().filter(|s| **s == tailpdf_shared::JobStatus::Completed).count();
    assert!(completed >= 1000, "{completed} of a's documents completed");
    let b_mid = median(b_during.clone());
    let a_mid = median(a_during.iter().map(|s| s.took).collect());
    let a_wait = besides(&a_during);
    println!(
        "batch fairness: one group of 20 {}; a's 1,000 documents in {:.1} s; b's job alone {}, \
         during a's batch {} ({:?}); a's sync alone {} (render {}, besides it {}), during its \
         batch {} ({:?}, besides its render {})",
        ms(group_time),
        batch_took.as_secs_f64(),
        ms(b_alone),
        ms(b_mid),
        b_during.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        ms(a_alone),
        ms(slot),
        ms(a_wait_alone),
        ms(a_mid),
        a_during.iter().map(|s| s.took.as_millis()).collect::<Vec<_>>(),
        ms(a_wait),
    );
    assert!(b_mid <= b_alone + group_time, "b's job waited {} behind a's batch", ms(b_mid));
    // At most one slot: a render as long as a's own under the same load (the batch keeps
    // both cores busy, which slows everything, the request's handling included). Waiting
    // behind the batch would be a group's print at least (`group_time`, ten renders alone).
    let slot_during = median(a_during.iter().map(|s| s.render).collect());
    assert!(
        a_wait <= a_wait_alone + slot.max(slot_during),
        "a's sync render waited {} before its render, {} alone (a render: {} alone, {} during)",
        ms(a_wait),
        ms(a_wait_alone),
        ms(slot),
        ms(slot_during)
    );
}
