//! The render engine against a real Chromium: page options, fonts, scripts, the network guard,
//! deadlines, crashes, restarts and process hygiene.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{http::header, response::Redirect, routing::get, Router};
use common::{engine_config, pixel, spec, FontServer};
use serde_json::json;
use tailpdf_e2e::pdf::{page_info, poppler};
use tailpdf_renderer::{engine::Engine, error::RenderError};

async fn engine_with(
    f: impl FnOnce(&mut tailpdf_renderer::config::EngineConfig),
) -> (Engine, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = engine_config("http://127.0.0.1:9/", cache.path());
    f(&mut cfg);
    (Engine::start(cfg).await.unwrap(), cache)
}

const TABLE: &str = "<table class=\"w-full divide-y divide-gray-200\">{rows}</table>";

fn long_document(rows: usize) -> String {
    let rows: String =
        (0..rows).map(|i| format!("<tr><td class=\"py-2\">Row {i}</td></tr>")).collect();
    TABLE.replace("{rows}", &rows)
}

#[tokio::test]
async fn paper_sizes_orientation_and_custom_sizes() {
    let (engine, _cache) = engine_with(|_| {}).await;
    let cases = [
        (json!({"format": "A4"}), (595.92, 841.92)),
        (json!({"format": "Letter", "landscape": true}), (792.0, 612.0)),
        (json!({"format": "a5"}), (419.52, 595.92)),
        (json!({"format": "Legal"}), (612.0, 1008.0)),
        (json!({"width": "4in", "height": "6in"}), (288.0, 432.0)),
        (json!({"width": "100mm", "height": 480}), (283.44, 360.0)),
        (json!({}), (612.0, 792.0)),
        // What TailPDF's PHP client sends: lower-case formats, custom sizes in pixels.
        (json!({"format": "a3", "landscape": true, "margin": []}), (1190.6, 841.9)),
        (json!({"format": "custom", "width": 595.5, "height": 842}), (446.6, 631.5)),
        (json!({"format": "a4", "width": 100, "height": 100}), (595.92, 841.92)),
        (json!({"format": "TABLOID", "margin": {"top": "10", "left": "0"}}), (792.0, 1224.0)),
    ];
    let css_page = "<style>@page { size: 5in 7in; }</style><p>x</p>";
    for (prefer, (w, h)) in [(true, (360.0, 504.0)), (false, (612.0, 792.0))] {
        let r = engine
            .render(&spec(
                json!({"content": css_page, "pdfOptions": {"preferCSSPageSize": prefer}}),
            ))
            .await
            .unwrap();
        let (_, pw, ph) = page_info(&r.pdf);
        assert!(
            (pw - w).abs() < 1.0 && (ph - h).abs() < 1.0,
            "preferCSSPageSize {prefer}: {pw}x{ph}"
        );
    }
    for (options, (w, h)) in cases {
        let r = engine
            .render(&spec(
                json!({"content": "<p class=\"p-4\">x</p>", "pdfOptions": options.clone()}),
            ))
            .await
            .unwrap();
        let (pages, pw, ph) = page_info(&r.pdf);
        assert_eq!(pages, 1, "{options}");
        assert!(
            (pw - w).abs() < 1.0 && (ph - h).abs() < 1.0,
            "{options}: {pw}x{ph}, expected {w}x{h}"
        );
    }
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn page_ranges_margins_scale_and_header_footer() {
    let (engine, _cache) = engine_with(|_| {}).await;
    let doc = long_document(150);
    let all = engine
        .render(&spec(json!({"content": doc, "pdfOptions": {"format": "A4"}})))
        .await
        .unwrap();
    let (pages, _, _) = page_info(&all.pdf);
    assert!(pages >= 3, "150 rows should fill several pages, got {pages}");

    let some = engine
        .render(&spec(json!({"content": doc, "pdfOptions": {"format": "A4", "pageRanges": "1-2"}})))
        .await
        .unwrap();
    assert_eq!(page_info(&some.pdf).0, 2);

    let small = engine
        .render(&spec(json!({"content": doc, "pdfOptions": {"format": "A4", "scale": 0.5}})))
        .await
        .unwrap();
    assert!(page_info(&small.pdf).0 < pages, "scale 0.5 should need fewer pages");

    let margins = engine
        .render(&spec(json!({"content": doc, "pdfOptions": {"format": "A4", "margin": {"top": "3in", "bottom": "3in"}}})))
        .await
        .unwrap();
    assert!(page_info(&margins.pdf).0 > pages, "large margins should need more pages");

    let footer = "<div class=\"w-full text-center text-[10px] text-gray-500\">Page <span class=\"pageNumber\"></span> of <span class=\"totalPages\"></span></div>";
    let with_footer = engine
        .render(&spec(json!({"content": doc, "pdfOptions": {
            "format": "A4", "displayHeaderFooter": true, "margin": {"top": "1in", "bottom": "1in"},
            "headerTemplate": "<div class=\"w-full px-8 text-[10px]\">ACME REPORT</div>",
            "footerTemplate": footer}})))
        .await
        .unwrap();
    let text = poppler("pdftotext", &with_footer.pdf, &["-layout"]);
    let n = page_info(&with_footer.pdf).0;
    for page in 1..=n {
        assert!(
            text.contains(&format!("Page {page} of {n}")),
            "footer of page {page} missing:\n{text}"
        );
    }
    assert_eq!(text.matches("ACME REPORT").count() as u32, n);

    let beyond = engine
        .render(&spec(json!({"content": "<p>one page</p>", "pdfOptions": {"pageRanges": "5-6"}})))
        .await
        .unwrap_err();
    assert!(matches!(&beyond, RenderError::BadInput(m) if m.contains("pageRanges")), "{beyond}");
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn requested_fonts_are_embedded_and_cached() {
    let fonts = FontServer::start().await;
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::start(engine_config(&fonts.base, cache.path())).await.unwrap();
    let content = "<p class=\"text-lg\">Regular</p><p class=\"font-semibold\">Semibold</p>";

    let r = engine
        .render(&spec(json!({"content": content, "fonts": ["Inter:wght@400;600"]})))
        .await
        .unwrap();
    let listed = poppler("pdffonts", &r.pdf, &[]);
    assert!(listed.contains("Inter-Regular") && listed.contains("CID TrueType"), "{listed}");
    assert!(listed.contains("Inter-SemiBold"), "{listed}");
    assert_eq!(fonts.requests(), 3, "one css2 request and two font files");

    // A family no system font provides: only the web font can have been used.
    let r = engine.render(&spec(json!({"content": content, "fonts": ["Interim"]}))).await.unwrap();
    let listed = poppler("pdffonts", &r.pdf, &[]);
    assert!(listed.contains("Inter-Regular"), "{listed}");
    let after_alias = fonts.requests();

    // The same fonts again: nothing asked of the font server, in memory or after a restart.
    engine
        .render(&spec(json!({"content": content, "fonts": ["Inter:wght@600;400"]})))
        .await
        .unwrap();
    assert_eq!(fonts.requests(), after_alias);
    engine.shutdown(Duration::from_secs(5)).await;
    let engine = Engine::start(engine_config(&fonts.base, cache.path())).await.unwrap();
    let r = engine
        .render(&spec(json!({"content": content, "fonts": ["Inter:wght@400;600"]})))
        .await
        .unwrap();
    assert!(poppler("pdffonts", &r.pdf, &[]).contains("Inter-SemiBold"));
    assert_eq!(fonts.requests(), after_alias, "the disk cache serves a new engine");

    let err = engine
        .render(&spec(json!({"content": content, "fonts": ["Nosuchfont"]})))
        .await
        .unwrap_err();
    // The css2 API answers 400 for a family it does not have: no retry can change that, and
    // the caller must hear it as their mistake (a 400), not as ours (a 500).
    assert!(
        matches!(&err, RenderError::BadInput(m) if m.contains("\"Nosuchfont\"") && m.contains("400 Bad Request")),
        "{err}"
    );
    assert!(!err.retryable());
    assert_eq!(err.to_api_error().status(), 400);
    engine.shutdown(Duration::from_secs(5)).await;
}

/// The font cache is bounded in bytes, on disk and in memory, the least recently used font
/// going first; a render still gets every font it asked for.
#[tokio::test]
async fn the_font_cache_is_bounded_in_bytes() {
    let fonts = FontServer::start().await;
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = engine_config(&fonts.base, cache.path());
    const CAP: u64 = 1 << 20;
    cfg.font_cache_max_bytes = CAP;
    let engine = Engine::start(cfg).await.unwrap();
    let content = "<p>Regular</p><p class=\"font-medium\">Medium</p><p class=\"font-semibold\">Semibold</p><p class=\"font-bold\">Bold</p>";
    let disk_bytes = || -> u64 {
        std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
    };
    for round in 0..2 {
        let r = engine
            .render(&spec(json!({"content": content, "fonts": ["Inter:wght@400;500;600;700"]})))
            .await
            .unwrap();
        let listed = poppler("pdffonts", &r.pdf, &[]);
        for weight in ["Inter-Regular", "Inter-Medium", "Inter-SemiBold", "Inter-Bold"] {
            assert!(listed.contains(weight), "round {round}: {weight} missing:\n{listed}");
        }
        let (memory, disk) = engine.font_cache_bytes();
        assert!(memory <= CAP && disk <= CAP, "round {round}: {memory} / {disk} bytes held");
        assert!(disk_bytes() <= CAP, "round {round}: {} bytes on disk", disk_bytes());
    }
    // The four files do not fit: some were fetched again in the second round.
    assert!(fonts.requests() > 5, "{} requests", fonts.requests());
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_font_server_that_never_answers_fails_the_render_within_the_deadline() {
    let fonts = FontServer::hanging().await;
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = engine_config(&fonts.base, cache.path());
    cfg.font_timeout = Duration::from_secs(2);
    let engine = Engine::start(cfg).await.unwrap();
    let started = Instant::now();
    let err = engine
        .render(&spec(json!({"content": "<p>x</p>", "fonts": ["Inter:wght@400"]})))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert!(
        matches!(&err, RenderError::Font(m) if m.contains("\"Inter:wght@400\"") && m.contains("did not answer within 2s")),
        "{err}"
    );
    assert!(err.retryable());
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn scripts_run_and_the_classes_they_add_are_styled() {
    let (engine, _cache) = engine_with(|_| {}).await;
    let content = "<div id=\"box\"></div><script>document.getElementById('box').className = \
                   'size-[200px] bg-[#ff0000]';</script>";
    let r = engine
        .render(&spec(json!({"content": content, "pdfOptions": {"printBackground": true}})))
        .await
        .unwrap();
    // 200 CSS px = 150 pt; at 72 dpi the pixel (50, 50) is inside the box.
    assert_eq!(pixel(&r.pdf, 72, 50, 50), [255, 0, 0]);
    assert_eq!(pixel(&r.pdf, 72, 300, 300), [255, 255, 255]);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_no_store_document_leaves_no_css_behind() {
    let (engine, _cache) = engine_with(|_| {}).await;
    let mut private = spec(json!({"content": "<p class=\"content-['Invoice_for_Ada']\">x</p>"}));
    private.no_store = true;
    let before = engine.css_memo_entries();
    engine.render(&private).await.unwrap();
    assert_eq!(engine.css_memo_entries(), before, "nothing of it is memoized");
    private.no_store = false;
    engine.render(&private).await.unwrap();
    assert_eq!(engine.css_memo_entries(), before + 1, "the same document without the header is");
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_document_never_sees_the_previous_ones_globals() {
    let (engine, _cache) = engine_with(|c| c.tabs = Some(1)).await;
    engine
        .render(&spec(json!({"content": "<script>window.secret = 'tenant-a';</script><p>a</p>"})))
        .await
        .unwrap();
    let r = engine
        .render(&spec(json!({"content": "<p id=\"out\">none</p><script>if (window.secret) document.getElementById('out').textContent = 'LEAK ' + window.secret;</script>"})))
        .await
        .unwrap();
    let text = poppler("pdftotext", &r.pdf, &[]);
    assert!(text.contains("none") && !text.contains("LEAK"), "{text}");
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_endless_script_hits_the_deadline_and_its_tab_is_replaced() {
    let (engine, _cache) = engine_with(|c| {
        c.tabs = Some(1);
        c.render_timeout = Duration::from_secs(3);
    })
    .await;
    let started = Instant::now();
    let err =
        engine.render(&spec(json!({"content": "<script>for (;;) {}</script>"}))).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, RenderError::Timeout(_)), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(!err.retryable());
    // The one tab was busy forever; the next render gets a new one and succeeds.
    let r = engine.render(&spec(json!({"content": "<p>after</p>"}))).await.unwrap();
    assert!(poppler("pdftotext", &r.pdf, &[]).contains("after"));
    assert!(engine.stats().tabs_replaced >= 1);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_crash_fails_only_the_render_in_flight() {
    let before = chromium_temp_dirs();
    let (engine, _cache) = engine_with(|_| {}).await;
    let busy = spec(
        json!({"content": "<script>const t = Date.now(); while (Date.now() - t < 8000) {}</script><p>slow</p>"}),
    );
    let pid = engine.browser_pid().await.unwrap();
    let in_flight = tokio::spawn({
        let engine = engine.clone();
        async move { engine.render(&busy).await }
    });
    // Wait until the render holds its tab, then give it time to be inside Chromium.
    let waiting = Instant::now();
    while engine.load().running == 0 && waiting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let err = in_flight.await.unwrap().unwrap_err();
    assert!(matches!(err, RenderError::Browser(_)), "{err}");
    assert!(err.retryable());
    let r = engine.render(&spec(json!({"content": "<p>recovered</p>"}))).await.unwrap();
    assert!(poppler("pdftotext", &r.pdf, &[]).contains("recovered"));
    assert_eq!(engine.stats().browser_starts, 2);
    assert_ne!(engine.browser_pid().await, Some(pid));
    engine.shutdown(Duration::from_secs(5)).await;
    let new: Vec<String> = chromium_temp_dirs().difference(&before).cloned().collect();
    assert!(new.is_empty(), "the killed browser left {new:?} in the temp directory");
}

#[tokio::test]
async fn chromium_restarts_after_n_renders_without_failing_any() {
    let (engine, _cache) = engine_with(|c| c.restart_after = 3).await;
    let renders = (0..8).map(|i| {
        let engine = engine.clone();
        async move { engine.render(&spec(json!({"content": format!("<p>doc {i}</p>")}))).await }
    });
    for r in futures::future::join_all(renders).await {
        r.unwrap();
    }
    assert!(engine.stats().browser_starts >= 3, "{:?}", engine.stats());
    assert_eq!(engine.stats().renders, 8);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn no_chromium_process_outlives_shutdown() {
    let before = chromium_temp_dirs();
    let (engine, _cache) = engine_with(|_| {}).await;
    engine.render(&spec(json!({"content": "<p>x</p>"}))).await.unwrap();
    let pid = engine.browser_pid().await.unwrap();
    let mut tree = tailpdf_e2e::process::descendants(pid);
    tree.push(pid);
    assert!(tree.len() > 2, "chromium runs helper processes: {tree:?}");
    engine.shutdown(Duration::from_secs(5)).await;
    // Neither running nor a zombie: /proc has no entry left for any of them.
    let left: Vec<u32> =
        tree.into_iter().filter(|p| std::path::Path::new(&format!("/proc/{p}")).exists()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let new: Vec<String> = chromium_temp_dirs().difference(&before).cloned().collect();
    assert!(new.is_empty(), "left in the temp directory: {new:?}");
}

/// Chromium keeps its singleton socket in a new directory of $TMPDIR and removes it only on a
/// clean exit. A killed browser (a crash, a hang, a SIGKILLed renderer) leaves it behind, so it
/// must live inside the browser's own home, which the engine removes.
fn chromium_temp_dirs() -> std::collections::BTreeSet<String> {
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("org.chromium."))
        .collect()
}

/// A loopback server for the page's requests; counts every hit.
async fn resource_server() -> (String, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let h2 = hits.clone();
    let app = Router::new()
        .route(
            "/style.css",
            get(move || {
                h.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        [(header::CONTENT_TYPE, "text/css")],
                        "#styled { background: #00ff00; width: 200px; height: 200px; }",
                    )
                }
            }),
        )
        .route(
            "/to-private",
            get(move || {
                h2.fetch_add(1, Ordering::SeqCst);
                async { Redirect::temporary("http://10.255.255.1/secret.css") }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, hits, task)
}

#[tokio::test]
async fn the_page_cannot_reach_private_addresses_and_says_so() {
    let (base, hits, server) = resource_server().await;
    let content = format!(
        "<link rel=\"stylesheet\" href=\"{base}/style.css?sig=SECRET\"><div id=\"styled\"></div>\
         <img src=\"http://169.254.169.254/latest/meta-data/\"><img src=\"file:///etc/passwd\">"
    );
    let (engine, _cache) = engine_with(|_| {}).await;
    let r = engine
        .render(&spec(json!({"content": content, "pdfOptions": {"printBackground": true}})))
        .await
        .unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the loopback server");
    assert_eq!(pixel(&r.pdf, 72, 50, 50), [255, 255, 255], "the blocked stylesheet did not apply");
    let problems = r.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(
        problems.contains("127.0.0.1") && problems.contains("Internal/private URLs not allowed"),
        "{problems}"
    );
    assert!(problems.contains("169.254.169.254"), "{problems}");
    assert!(problems.contains("file:///etc/passwd (blocked"), "{problems}");
    assert!(!problems.contains("SECRET"), "queries are never shown: {problems}");
    engine.shutdown(Duration::from_secs(5)).await;

    // With loopback allowed (development), the stylesheet loads; a redirect to a private
    // address is still refused.
    let (engine, _cache) = engine_with(|c| c.allow_loopback = true).await;
    let content = format!(
        "<link rel=\"stylesheet\" href=\"{base}/style.css\"><div id=\"styled\"></div>\
         <link rel=\"stylesheet\" href=\"{base}/to-private\">"
    );
    let r = engine
        .render(&spec(json!({"content": content, "pdfOptions": {"printBackground": true}})))
        .await
        .unwrap();
    assert_eq!(pixel(&r.pdf, 72, 50, 50), [0, 255, 0]);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let problems = r.problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(problems.contains("to-private") && problems.contains("blocked"), "{problems}");
    engine.shutdown(Duration::from_secs(5)).await;
    server.abort();
}

#[tokio::test]
async fn renders_run_in_parallel_on_the_pool() {
    let (engine, _cache) = engine_with(|c| c.tabs = Some(2)).await;
    let renders = (0..6).map(|i| {
        let engine = engine.clone();
        async move {
            engine
                .render(&spec(json!({"content": format!("<h1 class=\"text-4xl\">Doc {i}</h1>")})))
                .await
        }
    });
    for (i, r) in futures::future::join_all(renders).await.into_iter().enumerate() {
        let r = r.unwrap();
        assert!(poppler("pdftotext", &r.pdf, &[]).contains(&format!("Doc {i}")));
    }
    assert_eq!(engine.stats().renders, 6);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_warmed_engine_has_its_tabs_contexts_and_compilers_ready() {
    let (engine, _cache) = engine_with(|c| c.restart_after = 3).await;
    engine.warm().await;
    let warm = engine.warm_state().await;
    // Two tabs and a guest tab, a spare context per tab, a compiler for each render that can
    // run at once (both kinds of guest tab).
    assert_eq!((warm.shared_tabs, warm.spare_contexts, warm.compilers), (3, 2, 4), "{warm:?}");
    // The warm-up renders are nobody's: not counted, and not towards --restart-after.
    assert_eq!(engine.stats().renders, 0);
    for _ in 0..3 {
        engine.render(&spec(json!({"content": "<p class=\"p-4\">x</p>"}))).await.unwrap();
    }
    assert_eq!(engine.stats().browser_starts, 1, "{:?}", engine.stats());
    engine.shutdown(Duration::from_secs(5)).await;
}

/// Each tab knows its page process (where the headless shell prints, so that a long print there
/// can be lowered and an abandoned one stopped): one of this Chromium's page processes, its
/// own.
#[tokio::test]
async fn every_tab_knows_its_page_process() {
    let (engine, _cache) = engine_with(|c| {
        c.tabs = Some(2);
        c.guest_tabs = 0;
    })
    .await;
    engine.warm().await;
    let scripted =
        "<p id=\"v\">?</p><script>document.getElementById('v').textContent = 1;</script>";
    for content in ["<p>static</p>", scripted, "<p>again</p>"] {
        engine.render(&spec(json!({"content": content}))).await.unwrap();
    }
    let t = Instant::now();
    let mut found = engine.ready_page_processes().await;
    while found.len() < 3 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        found = engine.ready_page_processes().await;
    }
    assert!(found.len() >= 3, "shared tabs and spares: {found:?}");
    let chromium = engine.browser_pid().await.unwrap();
    let renderers: Vec<i32> = tailpdf_renderer::measure::process_tree(chromium)
        .into_iter()
        .filter(|pid| {
            let cmdline =
                std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            cmdline.contains("--type=renderer")
        })
        .map(|pid| i32::try_from(pid).unwrap())
        .collect();
    let pids: Vec<i32> =
        found.iter().map(|p| p.expect("a tab whose page process is unknown")).collect();
    for pid in &pids {
        assert!(
            renderers.contains(pid),
            "{pid} is not a page process of this Chromium: {renderers:?}"
        );
    }
    let mut distinct = pids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), pids.len(), "two tabs with one page process: {pids:?}");
    engine.shutdown(Duration::from_secs(5)).await;
}

/// Shared tabs (no scripts) print from hidden pages, behind a tab that is never used: Chromium
/// (the desktop build) then draws no frames for a screen nobody sees, about a quarter of a
/// PDF's CPU time (BENCHMARKS.md). Fresh contexts, where scripts run, stay visible, so that a script's
/// `requestAnimationFrame` and visibility checks behave as in a browser.
#[tokio::test]
async fn shared_tabs_are_hidden_and_script_contexts_are_visible() {
    let (engine, _cache) = engine_with(|c| {
        c.tabs = Some(1);
        c.guest_tabs = 0;
    })
    .await;
    engine.warm().await;
    // Chromium's headless shell (`--chromium`) has no window to hide a tab in: all its
    // pages are visible, and it draws no frames for a screen either way (BENCHMARKS.md).
    let chromium = tailpdf_renderer::config::EngineConfig::defaults().chromium;
    let shell = chromium.file_name().is_some_and(|n| n == "chromium-headless-shell");
    let shared = if shell { "visible" } else { "hidden" };
    let hidden = (vec![String::from(shared)], vec![String::from("visible")]);
    assert_eq!(engine.tab_visibility().await, hidden);
    // After a render that asked for something, its tab gets a new blank document (in the
    // background, before it is free again).
    let img = "<img src=\"http://127.0.0.1:9/x.png\">";
    engine.render(&spec(json!({"content": img}))).await.unwrap();
    let t = Instant::now();
    while engine.tab_visibility().await.0.is_empty() && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(engine.tab_visibility().await, hidden);
    let r = engine
        .render(&spec(json!({"content": "<p id=\"v\">?</p><script>document.getElementById('v').textContent = 'page is ' + document.visibilityState;</script>"})))
        .await
        .unwrap();
    assert!(r.isolated);
    let text = poppler("pdftotext", &r.pdf, &[]);
    assert!(text.contains("page is visible"), "{text}");
    engine.shutdown(Duration::from_secs(5)).await;
}

/// A hidden tab still prints what is far below the fold, lazily loaded images included.
#[tokio::test]
async fn a_lazy_image_far_below_the_fold_is_printed() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().route(
        "/red.svg",
        get(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    [(header::CONTENT_TYPE, "image/svg+xml")],
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\">\
                     <rect width=\"10\" height=\"10\" fill=\"#ff0000\"/></svg>",
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (engine, _cache) = engine_with(|c| {
        c.tabs = Some(1);
        c.allow_loopback = true;
    })
    .await;
    // 5000 CSS px of nothing, beyond Chromium's lazy-loading distance from a 1024 px window;
    // A4 pages are 1122.5 px tall, so the image is on page 5, from y = 510 px.
    let content = format!(
        "<div style=\"height:5000px\"></div><img loading=\"lazy\" src=\"{base}/red.svg\" \
         style=\"display:block;width:200px;height:200px\">"
    );
    let r = engine
        .render(&spec(json!({"content": content, "pdfOptions": {"format": "A4"}})))
        .await
        .unwrap();
    assert!(!r.isolated);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(page_info(&r.pdf).0, 5);
    assert_eq!(common::pixel_on(&r.pdf, 5, 96, 100, 600), [255, 0, 0]);
    engine.shutdown(Duration::from_secs(5)).await;
    server.abort();
}
