//! The adversarial corpus: every document is hostile. Each test is an "attacker then victim"
//! pair (or an attacker beside a victim) run through the real engine and Chromium, with one tab
//! and with two; the victim's PDF (or what a loopback listener saw) must show no trace of the
//! attacker.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    extract::{Path as UrlPath, RawQuery, State},
    http::header,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use common::spec;
use serde_json::json;
use tailpdf_e2e::pdf::poppler;
use tailpdf_renderer::{
    config::EngineConfig,
    engine::{
        schedule::{Lane, Requester},
        Engine,
    },
    error::RenderError,
};
use tokio::sync::Notify;

const MARK: &str = "PWNED";

async fn engine(tabs: usize, f: impl FnOnce(&mut EngineConfig)) -> (Engine, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = common::engine_config("http://127.0.0.1:9/", cache.path());
    cfg.tabs = Some(tabs);
    f(&mut cfg);
    (Engine::start(cfg).await.unwrap(), cache)
}

async fn text(engine: &Engine, content: &str) -> String {
    let r = engine.render(&spec(json!({ "content": content }))).await.unwrap();
    poppler("pdftotext", &r.pdf, &[])
}

/// Victims of both kinds: a static document, and one whose script shows what it finds.
const PASSIVE_VICTIM: &str = "<h1>Victim invoice</h1><p>Total due: 120.00</p>";
const ACTIVE_VICTIM: &str = "<h1>Victim report</h1><p id=\"seen\">seen: none</p><script>\
    const seen = []; for (const f of [() => window.__attacker, () => window.name, () => document.title, \
    () => document.cookie, () => localStorage.getItem('k'), () => sessionStorage.getItem('k'), \
    () => history.length > 1 && 'history ' + history.length]) { try { seen.push(f()); } catch (e) {} } \
    document.getElementById('seen').textContent = 'seen: ' + (seen.filter(Boolean).join(',') || 'none');</script>";

const ATTACKER: &str = "acct-attacker";
const NEIGHBOUR: &str = "acct-neighbour";

fn as_account(account: &str) -> Requester {
    Requester::new(account, Lane::Job)
}

/// Renders the attacker, then each victim a few times (tabs and an account's warm contexts are
/// reused last-in first-out, so the attacker's serve the next render), and checks that no
/// victim shows `MARK`: first victims of the attacker's own account (the next documents of one
/// account, in the contexts its scripts ran in), then of another account.
async fn attacker_then_victims(tabs: usize, attacker: &str) -> String {
    let (engine, _cache) = engine(tabs, |_| {}).await;
    let mut own = String::new();
    for victim_account in [ATTACKER, NEIGHBOUR] {
        // The account's earlier document that runs scripts: its contexts are now kept warm.
        let earlier = spec(json!({ "content": "<p>earlier</p><script>1</script>" }));
        engine.render_for(&earlier, &as_account(ATTACKER)).await.unwrap();
        let rendered =
            engine.render_for(&spec(json!({ "content": attacker })), &as_account(ATTACKER)).await;
        let reuses = engine.stats().warm_reuses;
        let kept = rendered.as_ref().is_ok_and(|r| r.isolated);
        own = match rendered {
            Ok(r) => poppler("pdftotext", &r.pdf, &[]),
            Err(e) => format!("error: {e}"),
        };
        for victim in [PASSIVE_VICTIM, ACTIVE_VICTIM, PASSIVE_VICTIM, ACTIVE_VICTIM] {
            let r = engine
                .render_for(&spec(json!({ "content": victim })), &as_account(victim_account))
                .await
                .unwrap();
            let seen = poppler("pdftotext", &r.pdf, &[]);
            let at = format!("tabs={tabs}, victim of {victim_account}");
            assert!(seen.contains("Victim"), "{seen}");
            assert!(!seen.contains(MARK), "{at}: the victim shows the attacker:\n{seen}");
            if victim == ACTIVE_VICTIM {
                assert!(seen.contains("seen: none"), "{at}: {seen}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if victim_account == ATTACKER && kept && tabs == 1 {
            // The victims really ran where the attacker's scripts had (not a fresh context).
            assert!(engine.stats().warm_reuses > reuses, "the attacker's context was not reused");
        }
    }
    engine.shutdown(Duration::from_secs(5)).await;
    own
}

/// An event handler after a form feed (a separator HTML knows and a lexical check missed):
/// its timer and globals must not reach the next documents.
#[tokio::test]
async fn a_handler_after_a_form_feed_leaves_nothing_behind() {
    let attacker = format!(
        "<p>attacker</p><img src=\"data:,x\"\x0conerror=\"window.__attacker='{MARK}-global'; \
         window.name='{MARK}-name'; setInterval(() => document.body && \
         document.body.insertAdjacentText('beforeend', ' {MARK}-timer'), 1);\">"
    );
    for tabs in [1, 2] {
        attacker_then_victims(tabs, &attacker).await;
    }
}

/// Tailwind copies arbitrary values into the CSS as they are: a value that decodes to
/// `</style><script>` must not close our style element, in the attacker's own render either.
#[tokio::test]
async fn generated_css_cannot_close_its_style_element() {
    let payload = format!(
        "&lt;/style&gt;&lt;script&gt;window.__attacker='{MARK}';setInterval(()=&gt;document.body.append(&quot;{MARK}&quot;),1)&lt;/script&gt;"
    );
    let attacker =
        format!("<p class=\"after:content-['{payload}'] bg-[url('{payload}')]\">attacker</p>");
    for tabs in [1, 2] {
        let own = attacker_then_victims(tabs, &attacker).await;
        assert!(own.contains("attacker") && !own.contains(MARK), "tabs={tabs}: {own}");
    }
}

/// `window.open` gets no window, and nothing a document opened outlives its render.
#[tokio::test]
async fn popups_are_blocked() {
    let attacker = format!(
        "<p id=\"r\">attacker</p><script>const w = window.open('about:blank', '_blank'); \
         document.getElementById('r').textContent = w ? 'popup opened' : 'popup blocked'; \
         if (w) w.eval(\"setInterval(() => {{ try {{ opener.document.body.append('{MARK}'); \
         opener.__attacker = '{MARK}'; }} catch (e) {{}} }}, 1)\");</script>"
    );
    for tabs in [1, 2] {
        let own = attacker_then_victims(tabs, &attacker).await;
        assert!(own.contains("popup blocked"), "tabs={tabs}: {own}");
    }
}

/// A timer bomb: endless busy timers and observers in a document that runs scripts. They end
/// with its render; the next documents render normally.
#[tokio::test]
async fn a_timer_bomb_ends_with_its_render() {
    let attacker = format!(
        "<p>attacker</p><script>for (let i = 0; i < 50; i++) setInterval(() => {{ \
         const t = Date.now(); while (Date.now() - t < 20) {{}} \
         if (document.body) document.body.append('{MARK}'); window.__attacker = '{MARK}'; }}, 0); \
         new MutationObserver(() => document.body && document.body.append('{MARK}')).observe(document, {{subtree: true, childList: true}});</script>"
    );
    for tabs in [1, 2] {
        attacker_then_victims(tabs, &attacker).await;
    }
}

// --------------------------------------------------------------- stand-in site ----

/// A loopback site for the attacks that need a real origin: pages that write and read every
/// kind of storage, a service worker, large images, and counters of what was asked for.
#[derive(Clone, Default)]
struct Site {
    reports: Arc<Mutex<HashMap<String, String>>>,
    reported: Arc<Notify>,
    bytes_served: Arc<AtomicU64>,
    hits: Arc<AtomicUsize>,
}

/// Writes every kind of storage, registers a service worker and answers on a broadcast channel;
/// its load (and its render) waits until the site has the report named `hold`.
fn store_page(hold: &str) -> String {
    format!("{STORE_SCRIPT}<img src=\"/barrier/{hold}\">")
}

const STORE_SCRIPT: &str = r#"<!doctype html><p>store</p><script>
const within = (p) => Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error('timeout')), 1000))]);
(async () => {
  const done = [];
  try { localStorage.setItem('k', 'PWNED-localStorage'); done.push('ls'); } catch (e) {}
  try { sessionStorage.setItem('k', 'PWNED-sessionStorage'); done.push('ss'); } catch (e) {}
  try { document.cookie = 'k=PWNED-cookie; SameSite=None; Secure'; document.cookie = 'k2=PWNED-cookie'; if (document.cookie.includes('PWNED')) done.push('cookie'); } catch (e) {}
  try { await within(new Promise((ok, no) => { const r = indexedDB.open('db', 1); r.onupgradeneeded = () => r.result.createObjectStore('s'); r.onsuccess = () => { const t = r.result.transaction('s', 'readwrite'); t.objectStore('s').put('PWNED-idb', 'k'); t.oncomplete = ok; t.onerror = no; }; r.onerror = no; })); done.push('idb'); } catch (e) {}
  try { const c = await within(caches.open('c')); await within(c.put('/cached', new Response('PWNED-cache'))); done.push('cache'); } catch (e) {}
  try { await within(navigator.serviceWorker.register('/sw.js')); done.push('sw'); } catch (e) {}
  try { const b = new BroadcastChannel('tailpdf'); b.onmessage = () => b.postMessage('PWNED-broadcast'); done.push('bc'); } catch (e) {}
  await fetch('/report/store?' + done.join(','));
})();
</script>"#;

/// Reads every kind of storage the document can reach, shows it, and reports it to `report`.
macro_rules! read_script { () => { r#"<script>
const within = (p) => Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error('timeout')), 1000))]);
(async () => {
  const seen = [];
  try { seen.push(localStorage.getItem('k')); } catch (e) {}
  try { seen.push(sessionStorage.getItem('k')); } catch (e) {}
  try { seen.push(document.cookie); } catch (e) {}
  try { seen.push(await within(new Promise((ok) => { const r = indexedDB.open('db', 1); r.onupgradeneeded = () => r.result.createObjectStore('s'); r.onsuccess = () => { const g = r.result.transaction('s').objectStore('s').get('k'); g.onsuccess = () => ok(g.result); g.onerror = () => ok(null); }; r.onerror = () => ok(null); }))); } catch (e) {}
  try { const m = await within(caches.match('/cached')); if (m) seen.push(await m.text()); } catch (e) {}
  try { const regs = await within(navigator.serviceWorker.getRegistrations()); if (regs.length) seen.push('PWNED-sw'); } catch (e) {}
  try { const b = new BroadcastChannel('tailpdf'); b.onmessage = (e) => seen.push(e.data); b.postMessage('hello'); await new Promise((r) => setTimeout(r, 300)); } catch (e) {}
  const found = seen.filter(Boolean).join(',') || 'clean';
  document.getElementById('seen').textContent = 'seen: ' + found;
  await fetch(report + '?' + encodeURIComponent(found));
})();
</script>"# }; }

const READ_SCRIPT: &str = read_script!();

const READ_PAGE: &str = concat!(
    "<!doctype html><p id=\"seen\">read</p><script>const report = '/report/read';</script>",
    read_script!(),
    "<img src=\"/barrier/read\">"
);

const SERVICE_WORKER: &str = "self.addEventListener('fetch', (e) => e.respondWith(new Response('<p>PWNED-sw</p>', {headers: {'content-type': 'text/html'}})));";

impl Site {
    async fn start() -> (Self, String, tokio::task::JoinHandle<()>) {
        let site = Self::default();
        let app = Router::new()
            .route("/store", get(|| async { html(&store_page("store")) }))
            .route("/store-and-stay", get(|| async { html(&store_page("read")) }))
            .route("/read", get(|| async { html(READ_PAGE) }))
            .route(
                "/sw.js",
                get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SERVICE_WORKER) }),
            )
            .route("/report/{key}", get(report))
            .route("/barrier/{key}", get(barrier))
            .route("/big/{n}", get(big))
            .route("/pixel/{n}", get(pixel))
            .with_state(site.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (site, base, task)
    }

    fn report(&self, key: &str) -> Option<String> {
        self.reports.lock().unwrap().get(key).cloned()
    }

    async fn wait_report(&self, key: &str, limit: Duration) -> Option<String> {
        let started = Instant::now();
        loop {
            let notified = self.reported.notified();
            if let Some(r) = self.report(key) {
                return Some(r);
            }
            let left = limit.checked_sub(started.elapsed())?;
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

fn html(body: &str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body.to_owned()).into_response()
}

const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54,
    0x78, 0xda, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0, 5, 5, 2, 0, 0x5f, 0xc8, 0xf1, 0xd2, 0, 0, 0,
    0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn report(
    State(site): State<Site>,
    UrlPath(key): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> &'static str {
    site.reports.lock().unwrap().insert(key, query.unwrap_or_default());
    site.reported.notify_waiters();
    "ok"
}

/// Holds a page's load event (and so its print) until the page has reported.
async fn barrier(State(site): State<Site>, UrlPath(key): UrlPath<String>) -> Response {
    let _ = site.wait_report(&key, Duration::from_secs(10)).await;
    ([(header::CONTENT_TYPE, "image/png")], PNG).into_response()
}

const BIG: usize = 4 * 1024 * 1024;

async fn big(State(site): State<Site>) -> Response {
    site.bytes_served.fetch_add(BIG as u64, Ordering::SeqCst);
    let mut body = PNG.to_vec();
    body.resize(BIG, 0);
    ([(header::CONTENT_TYPE, "image/png")], body).into_response()
}

async fn pixel(State(site): State<Site>) -> Response {
    site.hits.fetch_add(1, Ordering::SeqCst);
    ([(header::CONTENT_TYPE, "image/png")], PNG).into_response()
}

/// Storage of every kind and service workers written by one document at a real origin (it
/// navigates there) are not there for the next one. Here the attacker's handler hides behind a
/// form feed; the victim reads what its document can reach and reports it to the site.
#[tokio::test]
async fn storage_and_service_workers_do_not_cross_renders() {
    let (site, base, server) = Site::start().await;
    for tabs in [1, 2] {
        site.reports.lock().unwrap().clear();
        let (engine, _cache) = engine(tabs, |c| c.allow_loopback = true).await;
        let attacker = format!(
            "<p>attacker</p><img src=\"data:,x\"\x0conerror=\"location.href = '{base}/store'\">"
        );
        let _ = engine.render(&spec(json!({ "content": attacker }))).await;
        let stored = site.wait_report("store", Duration::from_secs(5)).await;
        let victim = format!(
            "<p id=\"seen\">victim</p><script>const report = '{base}/report/read';</script>{READ_SCRIPT}\
             <img src=\"{base}/barrier/read\">"
        );
        let r = engine.render(&spec(json!({ "content": victim }))).await.unwrap();
        let seen = site.report("read");
        let pdf = poppler("pdftotext", &r.pdf, &[]);
        assert!(
            seen.as_deref() == Some("clean") && !pdf.contains(MARK),
            "tabs={tabs}: the victim saw {seen:?} (the attacker wrote {stored:?}):\n{pdf}"
        );
        engine.shutdown(Duration::from_secs(5)).await;
    }
    server.abort();
}

/// Within one account: a frame at a real origin that wrote whatever storage it could there
/// leaves nothing for the account's next document, whose frame reads the same origin. (Under a
/// top-level document at an opaque origin, Chromium 156 gives such a frame no storage at all,
/// cookies included; the engine does not rely on that: a context whose document opened a frame
/// at a real origin is never kept warm.)
#[tokio::test]
async fn storage_a_frame_wrote_does_not_reach_the_accounts_next_document() {
    let (site, base, server) = Site::start().await;
    let (engine, _cache) = engine(1, |c| c.allow_loopback = true).await;
    let who = as_account(ATTACKER);
    let attacker =
        format!("<p>attacker</p><iframe src=\"{base}/store\"></iframe><script>1</script>");
    let _ = engine.render_for(&spec(json!({ "content": attacker })), &who).await;
    let stored = site.wait_report("store", Duration::from_secs(5)).await;
    assert!(stored.is_some(), "the frame did not run");
    for _ in 0..2 {
        site.reports.lock().unwrap().remove("read");
        let victim =
            format!("<p>victim</p><iframe src=\"{base}/read\"></iframe><script>1</script>");
        engine.render_for(&spec(json!({ "content": victim })), &who).await.unwrap();
        let seen = site.wait_report("read", Duration::from_secs(5)).await;
        assert_eq!(seen.as_deref(), Some("clean"), "the attacker wrote {stored:?}");
    }
    assert_eq!(engine.stats().warm_reuses, 0, "a context that opened a real origin was kept");
    // A document that opens no origin leaves its context warm for the next.
    for reuses in [0, 1] {
        engine.render_for(&spec(json!({ "content": ACTIVE_VICTIM })), &who).await.unwrap();
        assert_eq!(engine.stats().warm_reuses, reuses);
    }
    engine.shutdown(Duration::from_secs(5)).await;
    server.abort();
}

/// An account's documents that run scripts reuse a browser context kept warm for it from its
/// second such document on; another account's documents never do; with `--warm-contexts 0`
/// none is kept.
#[tokio::test]
async fn warm_contexts_serve_only_their_own_account() {
    let doc = spec(json!({ "content": ACTIVE_VICTIM }));
    for (kept, expected) in [(Some(2), [0, 0, 0, 1, 1, 2]), (Some(0), [0; 6])] {
        let (engine, _cache) = engine(1, |c| c.warm_contexts = kept).await;
        let order = [ATTACKER, ATTACKER, NEIGHBOUR, ATTACKER, NEIGHBOUR, NEIGHBOUR];
        for (i, who) in order.into_iter().enumerate() {
            let r = engine.render_for(&doc, &as_account(who)).await.unwrap();
            assert!(r.isolated && poppler("pdftotext", &r.pdf, &[]).contains("seen: none"));
            assert_eq!(
                engine.stats().warm_reuses,
                expected[i],
                "kept {kept:?}, render {i} ({who})"
            );
        }
        engine.shutdown(Duration::from_secs(5)).await;
    }
}

/// Two documents rendering at the same time cannot talk: a broadcast channel (or any storage)
/// at one origin that both navigate to carries nothing from one to the other.
#[tokio::test]
async fn concurrent_renders_share_no_channel() {
    let (site, base, server) = Site::start().await;
    let (engine, _cache) = engine(2, |c| c.allow_loopback = true).await;
    // The attacker's page stays open (its load waits for the victim's report).
    let attacker = format!("<script>location.href = '{base}/store-and-stay';</script>");
    let attacker_task = tokio::spawn({
        let engine = engine.clone();
        async move { engine.render(&spec(json!({ "content": attacker }))).await.map(|_| ()) }
    });
    let _ = site.wait_report("store", Duration::from_secs(5)).await;
    let victim = format!("<p>victim</p><script>location.href = '{base}/read';</script>");
    let _ = engine.render(&spec(json!({ "content": victim }))).await;
    let seen = site.report("read");
    assert!(
        !seen.as_deref().unwrap_or_default().contains(MARK),
        "the victim heard from the attacker: {seen:?}"
    );
    let _ = attacker_task.await;
    engine.shutdown(Duration::from_secs(5)).await;
    server.abort();
}

/// A document stays the document it was given: a script, a meta refresh or a form that
/// navigates away is dropped (in development too, where the page could be fetched).
#[tokio::test]
async fn documents_cannot_navigate_away() {
    let (site, base, server) = Site::start().await;
    let (engine, _cache) = engine(1, |c| c.allow_loopback = true).await;
    for attack in [
        format!("<p>original</p><script>location.href = '{base}/report/navigated';</script>"),
        format!("<meta http-equiv=\"refresh\" content=\"0;url={base}/report/navigated\"><p>original</p>"),
        format!("<form id=\"f\" action=\"{base}/report/navigated\"></form><p>original</p>\
                 <script>document.getElementById('f').submit();</script>"),
    ] {
        let r = engine.render(&spec(json!({ "content": attack }))).await.unwrap();
        let seen = poppler("pdftotext", &r.pdf, &[]);
        assert!(seen.contains("original") && !seen.contains("ok"), "{attack}:\n{seen}");
        assert!(r.problems.iter().any(|p| p.to_string().contains("cannot navigate away")), "{:?}", r.problems);
    }
    assert_eq!(site.report("navigated"), None, "a navigation reached the site");
    engine.shutdown(Duration::from_secs(5)).await;
    server.abort();
}

/// Nothing a document loaded is served to a later one from a cache: each asks the site.
#[tokio::test]
async fn resources_are_not_cached_across_renders() {
    let (site, base, server) = Site::start().await;
    for tabs in [1, 2] {
        site.hits.store(0, Ordering::SeqCst);
        let (engine, _cache) = engine(tabs, |c| c.allow_loopback = true).await;
        let passive = format!("<p>x</p><img src=\"{base}/pixel/1\">");
        let active = format!("<p>x</p><img src=\"{base}/pixel/1\"><script>1</script>");
        for content in [&passive, &passive, &active, &active, &passive] {
            engine.render(&spec(json!({ "content": content }))).await.unwrap();
        }
        assert_eq!(site.hits.load(Ordering::SeqCst), 5, "tabs={tabs}");
        engine.shutdown(Duration::from_secs(5)).await;
    }
    server.abort();
}

/// A document the quick lexical look takes for static, whose DOM shows otherwise (here a
/// `javascript:` URL written with an entity), is rendered again in a fresh context: the wrong
/// guess costs time, never isolation.
#[tokio::test]
async fn a_wrong_guess_costs_a_second_render_not_isolation() {
    let (engine, _cache) = engine(1, |_| {}).await;
    let plain = engine.render(&spec(json!({ "content": PASSIVE_VICTIM }))).await.unwrap();
    assert!(!plain.isolated);
    // Entity-encoded; and in mixed case with spaces and control characters in it.
    let hidden = [
        "<a href=\"&#106;avascript:void(0)\">link</a><p>hidden</p>",
        "<a href=\"&#1; JaVa&#9;Scr&#10;ipt:void(0)\">link</a><p>hidden</p>",
    ];
    for content in hidden {
        let r = engine.render(&spec(json!({ "content": content }))).await.unwrap();
        assert!(r.isolated && poppler("pdftotext", &r.pdf, &[]).contains("hidden"), "{content}");
    }
    assert_eq!(engine.stats().escalations, 2);
    let scripted = engine.render(&spec(json!({ "content": ACTIVE_VICTIM }))).await.unwrap();
    assert!(scripted.isolated);
    assert_eq!(engine.stats().escalations, 2, "a plain script goes to a fresh context at once");
    engine.shutdown(Duration::from_secs(5)).await;
}

// ------------------------------------------------------------------- network ----

/// A loopback TCP and a UDP listener that count whatever reaches them.
struct Listeners {
    tcp: SocketAddr,
    udp: SocketAddr,
    tcp_hits: Arc<AtomicUsize>,
    udp_hits: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Listeners {
    async fn start() -> Self {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (tcp_addr, udp_addr) = (tcp.local_addr().unwrap(), udp.local_addr().unwrap());
        let (tcp_hits, udp_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let t = tcp_hits.clone();
        let u = udp_hits.clone();
        let tasks = vec![
            tokio::spawn(async move {
                while let Ok((_stream, _)) = tcp.accept().await {
                    t.fetch_add(1, Ordering::SeqCst);
                }
            }),
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while udp.recv_from(&mut buf).await.is_ok() {
                    u.fetch_add(1, Ordering::SeqCst);
                }
            }),
        ];
        Self { tcp: tcp_addr, udp: udp_addr, tcp_hits, udp_hits, tasks }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// WebSockets, WebRTC (STUN over UDP, TURN over TCP), WebTransport and preconnects are not
/// requests the interceptor sees: none may reach a loopback listener, from the document or from
/// a frame at a loopback origin (a secure context), even with loopback allowed for the page's
/// ordinary requests (development).
#[tokio::test]
async fn websockets_webrtc_and_preconnects_reach_nothing() {
    let l = Listeners::start().await;
    let (tcp, udp) = (l.tcp, l.udp);
    let script = format!(
        "<script>try {{ new WebSocket('ws://{tcp}/'); }} catch (e) {{}} \
         try {{ new WebSocket('ws://localhost:{port}/'); }} catch (e) {{}} \
         for (const urls of ['stun:{udp}', 'turn:{tcp}?transport=tcp', 'turn:{udp}?transport=udp']) {{ \
           try {{ const pc = new RTCPeerConnection({{iceServers: [{{urls, username: 'u', credential: 'c'}}]}}); \
                pc.createDataChannel('x'); pc.createOffer().then((o) => pc.setLocalDescription(o)); }} catch (e) {{}} }} \
         try {{ new WebTransport('https://{udp}/'); }} catch (e) {{}}</script>",
        port = tcp.port()
    );
    let frame_page =
        format!("<!doctype html><link rel=\"preconnect\" href=\"http://{tcp}\">{script}");
    let app = Router::new().route(
        "/attack",
        get(move || {
            let page = frame_page.clone();
            async move { ([(header::CONTENT_TYPE, "text/html")], page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let site = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let attack = format!(
        "<link rel=\"preconnect\" href=\"http://{tcp}\"><p>attacker</p>{script}\
         <iframe src=\"http://{site}/attack\"></iframe>"
    );
    for tabs in [1, 2] {
        for allow_loopback in [false, true] {
            let (engine, _cache) = engine(tabs, |c| c.allow_loopback = allow_loopback).await;
            let _ = engine.render(&spec(json!({ "content": attack }))).await;
            // ICE gathering and reconnects go on after a render; give them time to show.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            engine.shutdown(Duration::from_secs(5)).await;
        }
    }
    server.abort();
    assert_eq!(l.tcp_hits.load(Ordering::SeqCst), 0, "a TCP connection reached the listener");
    assert_eq!(l.udp_hits.load(Ordering::SeqCst), 0, "a UDP datagram reached the listener");
}

// ------------------------------------------------------------------ resources ----

/// A memory bomb: many large images. The render stops at the byte budget with an error that
/// names it; far less than the bomb is ever fetched; the next render is unaffected.
#[tokio::test]
async fn a_memory_bomb_of_large_images_stops_at_the_budget() {
    let (site, base, server) = Site::start().await;
    let (engine, _cache) = engine(2, |c| c.allow_loopback = true).await;
    let images: String = (0..250).map(|i| format!("<img src=\"{base}/big/{i}\">")).collect();
    let started = Instant::now();
    let err = engine.render(&spec(json!({ "content": images }))).await.unwrap_err();
    let message = err.to_api_error().message;
    assert!(
        message.contains("--max-render-bytes") && !err.retryable(),
        "{message} after {:?}",
        started.elapsed()
    );
    let served = site.bytes_served.load(Ordering::SeqCst);
    assert!(served < 250 * BIG as u64 / 4, "{served} bytes were fetched for the bomb");
    assert!(text(&engine, PASSIVE_VICTIM).await.contains("Victim"));
    engine.shutdown(Duration::from_secs(5)).await;
    server.abort();
}

/// Thousands of sub-requests: refused past the count limit, with an error that names it.
#[tokio::test]
async fn a_request_bomb_stops_at_the_request_limit() {
    let (site, base, server) = Site::start().await;
    let (engine, _cache) = engine(1, |c| c.allow_loopback = true).await;
    let images: String = (0..3000).map(|i| format!("<img src=\"{base}/pixel/{i}\">")).collect();
    let err = engine.render(&spec(json!({ "content": images }))).await.unwrap_err();
    let message = err.to_api_error().message;
    assert!(message.contains("--max-requests"), "{message}");
    assert!(
        site.hits.load(Ordering::SeqCst) <= 600,
        "{} requests",
        site.hits.load(Ordering::SeqCst)
    );
    engine.shutdown(Duration::from_secs(5)).await;
    server.abort();
}

/// A document that would print thousands of pages fails with an error naming the page limit,
/// long before its deadline.
#[tokio::test]
async fn a_page_bomb_stops_at_the_page_limit() {
    let (engine, _cache) = engine(1, |_| {}).await;
    let content = "<div style=\"height: 30000in\">tall</div>";
    let started = Instant::now();
    let err = engine.render(&spec(json!({ "content": content }))).await.unwrap_err();
    let message = err.to_api_error().message;
    assert!(
        message.contains("--max-pages") && !err.retryable(),
        "{message} after {:?}",
        started.elapsed()
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

/// A class bomb (a script that adds tens of thousands of costly classes, here let past the
/// class limit) runs beside another account's ordinary render: the ordinary render does not
/// wait for the bomb's CSS, and the bomb's generation is stopped at the compiler's deadline.
#[tokio::test]
async fn a_class_bomb_does_not_hold_up_another_render() {
    // Big enough to outlast the compiler timeout on a machine twice as fast as usual (60,000
    // classes once compiled within 3 s), with a CSS limit it cannot hit first.
    let (engine, _cache) = engine(2, |c| {
        c.limits.classes = 200_000;
        c.limits.css_bytes = 512 << 20;
        c.compiler_timeout = Duration::from_secs(3);
    })
    .await;
    let bomb = "<div id=\"b\"></div><script>const b = document.getElementById('b'); \
        const c = []; for (let i = 0; i < 150000; i++) c.push('hover:md:focus:[&_*_*]:bg-[#' + \
        i.toString(16).padStart(6, '0') + ']/[.' + (i % 97) + ']'); b.className = c.join(' ');</script>";
    // Each victim's CSS is new (not memoized): it must be generated while the bomb's is.
    let victim = |i: usize| format!("<p class=\"p-[{i}px] text-[#12345{i}]\">Victim invoice</p>");
    let started = Instant::now();
    assert!(text(&engine, &victim(1)).await.contains("Victim invoice"));
    let alone = started.elapsed();
    let bomb_task = tokio::spawn({
        let engine = engine.clone();
        async move {
            let r = engine.render(&spec(json!({ "content": bomb }))).await;
            (Instant::now(), r.map(|_| ()))
        }
    });
    // Time for the bomb's classes to reach the compiler.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    assert!(text(&engine, &victim(2)).await.contains("Victim invoice"));
    let (victim_done, beside) = (Instant::now(), started.elapsed());
    let (bomb_done, bomb) = bomb_task.await.unwrap();
    assert!(
        victim_done < bomb_done && beside < alone + Duration::from_secs(2),
        "the victim took {beside:?} beside the bomb ({alone:?} alone)"
    );
    assert_limit(&bomb.unwrap_err(), "--compiler-timeout");
    // The stopped compiler was replaced: CSS is generated as before.
    assert!(text(&engine, &victim(3)).await.contains("Victim invoice"));
    engine.shutdown(Duration::from_secs(5)).await;
}

/// A browser that cannot answer (stopped) is not ready, and is replaced.
#[tokio::test]
async fn a_hung_browser_is_not_ready_and_is_replaced() {
    let (engine, _cache) = engine(1, |_| {}).await;
    assert!(engine.is_ready().await);
    let pid = engine.browser_pid().await.unwrap();
    let target = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let started = Instant::now();
    let ready = engine.is_ready().await;
    assert!(!ready, "a stopped Chromium was reported ready");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The render after it runs on a new Chromium.
    let r = engine.render(&spec(json!({ "content": "<p>after</p>" }))).await;
    let _ = nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGCONT);
    assert!(poppler("pdftotext", &r.unwrap().pdf, &[]).contains("after"));
    assert_ne!(engine.browser_pid().await, Some(pid));
    assert!(engine.is_ready().await);
    engine.shutdown(Duration::from_secs(5)).await;
}

/// Limits fail the render with an error that is not retried and names the flag to change.
fn assert_limit(err: &RenderError, flag: &str) {
    let message = err.to_api_error().message;
    assert!(message.contains(flag) && !err.retryable(), "{message}");
}

#[tokio::test]
async fn too_many_classes_fail_at_once_naming_the_limit() {
    let (engine, _cache) = engine(1, |_| {}).await;
    let classes: Vec<String> = (0..30_000).map(|i| format!("p-[{i}px]")).collect();
    let content = format!("<p class=\"{}\">x</p>", classes.join(" "));
    let started = Instant::now();
    let err = engine.render(&spec(json!({ "content": content }))).await.unwrap_err();
    assert_limit(&err, "--max-classes");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    engine.shutdown(Duration::from_secs(5)).await;
}

/// Chromium's own sandbox is on by default where the machine allows it (here: user namespaces,
/// even when the renderer runs as root): its page processes run as an unprivileged user, in
/// namespaces of their own.
#[tokio::test]
async fn page_processes_run_in_chromiums_sandbox() {
    let (engine, _cache) = engine(1, |_| {}).await;
    engine.render(&spec(json!({ "content": "<p>x</p>" }))).await.unwrap();
    let pid = engine.browser_pid().await.unwrap();
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    let renderers: Vec<u32> = tailpdf_e2e::process::descendants(pid)
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("--type=renderer"))
                .unwrap_or(false)
        })
        .collect();
    assert!(!renderers.is_empty(), "no page process found under {pid}");
    for p in renderers {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap();
        let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap().split_whitespace();
        let uids: Vec<u32> = uid.map(|u| u.parse().unwrap()).collect();
        assert!(uids.iter().all(|u| *u != 0), "page process {p} runs as root: {uids:?}");
        let ns = std::fs::read_link(format!("/proc/{p}/ns/user")).unwrap();
        assert_ne!(ns, ours, "page process {p} shares our user namespace: no sandbox");
    }
    engine.shutdown(Duration::from_secs(5)).await;
}
