//! `tailpdf-bench`: the render engine measured against its floor and against a Puppeteer peer,
//! all in the same run (these machines' speed varies by 2× from hour to hour: read ratios).
//!
//!   make bench   (cargo run --release --features testing --bin tailpdf-bench [-- --renders 200])
//!
//! - floor: the same HTML with its Tailwind CSS ready-made (by the pinned Tailwind CLI, as a
//!   user of Puppeteer would make it), set into a reused tab and printed with bare CDP
//!   printToPDF (what no engine can beat);
//! - engine: the invoice through the whole engine (class scan, CSS, a shared tab with scripts
//!   off, the DOM inspection, the guard, print), and the same invoice with a script (a browser
//!   context of its own per render);
//! - throughput with 1, 2 and 4 tabs; Tailwind CSS generation cached and uncached;
//! - the peers: Puppeteer on the floor's HTML, with a reused page per render in flight, and
//!   with a fresh browser context per render (renderer/bench), at 1, 2 and 4 renders at once,
//!   each level right after the engine's;
//! - CPU time per PDF, of the engine's process and of Chromium's by process kind, against the
//!   reused page's (at 2 tabs on 2 cores both are CPU-bound), and the engine's with Chromium's
//!   sandbox off.
//!
//! Prints a Markdown report (BENCHMARKS.md keeps the figures).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::Context;
use chromiumoxide::cdp::browser_protocol::page::PrintToPdfParams;
use clap::Parser;
use futures::StreamExt;
use tailpdf_renderer::{
    config::{EngineConfig, SandboxMode},
    engine::{
        document,
        schedule::{Lane, Requester},
        BareBrowser, Engine,
    },
    measure,
};
use tailpdf_shared::{request::PdfRequest, RenderSpec, UrlPolicy};

#[derive(Parser)]
#[command(about = "Benchmarks the render engine against bare CDP printToPDF and Puppeteer")]
struct Args {
    /// Renders per latency measurement (after a warm-up of a tenth of that).
    #[arg(long, default_value_t = 200)]
    renders: usize,
    /// Renders per throughput measurement.
    #[arg(long, default_value_t = 300)]
    throughput_renders: usize,
    /// The document to render.
    #[arg(long, default_value = "examples/invoice.html")]
    input: PathBuf,
    /// The Chromium of the engine, the floor and the peer (the service's default).
    #[arg(long, default_value = "/usr/lib/chromium/chromium-headless-shell")]
    chromium: PathBuf,
    /// Skip the Puppeteer peer (it needs the npm tools of `make setup`).
    #[arg(long)]
    no_peer: bool,
    /// Only the cost of the post-processing steps and of `tagged`/`outline`.
    #[arg(long)]
    postprocess_only: bool,
    /// Only the batch section: per-document throughput alone and in groups.
    #[arg(long)]
    batch_only: bool,
    /// Documents per variant and round in the batch section.
    #[arg(long, default_value_t = 100)]
    batch_documents: usize,
    /// Rounds of the batch section (each variant once per round).
    #[arg(long, default_value_t = 6)]
    batch_rounds: usize,
    /// Only the section of documents that run scripts: one account, many, and the peer.
    #[arg(long)]
    scripted_only: bool,
    /// Documents per variant and round in the scripted section.
    #[arg(long, default_value_t = 120)]
    scripted_documents: usize,
    /// Rounds of the scripted section (each variant once per round).
    #[arg(long, default_value_t = 3)]
    scripted_rounds: usize,
    /// Only a side-by-side of `--chromium` and this other Chromium build (for instance Debian's
    /// whole chromium), alternated each round.
    #[arg(long)]
    against: Option<PathBuf>,
    /// Rounds of the side-by-side.
    #[arg(long, default_value_t = 3)]
    against_rounds: usize,
}

struct Stats {
    p50: Duration,
    p95: Duration,
    mean: Duration,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Stats { p50: at(0.5), p95: at(0.95), mean }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn row(what: &str, s: &Stats, fmt: fn(Duration) -> String) {
    println!("| {what} | {} | {} | {} |", fmt(s.p50), fmt(s.p95), fmt(s.mean));
}

fn config(chromium: &Path, tabs: usize, cache: &Path) -> EngineConfig {
    with_sandbox(chromium, tabs, cache, SandboxMode::Auto)
}

fn with_sandbox(chromium: &Path, tabs: usize, cache: &Path, sandbox: SandboxMode) -> EngineConfig {
    let mut cfg = EngineConfig::defaults();
    cfg.sandbox = sandbox;
    cfg.chromium = chromium.to_path_buf();
    cfg.tabs = Some(tabs);
    cfg.restart_after = 0;
    cfg.fonts_api_base = "http://127.0.0.1:9/".parse().expect("a URL");
    cfg.font_cache_dir = cache.to_path_buf();
    cfg
}

fn spec_of(content: &str) -> anyhow::Result<RenderSpec> {
    spec_with(content, serde_json::json!({}))
}

/// The benchmark's options (A4, backgrounds) and `extra`.
fn spec_with(content: &str, extra: serde_json::Value) -> anyhow::Result<RenderSpec> {
    let mut options = serde_json::json!({"format": "A4", "printBackground": true});
    if let (Some(o), Some(extra)) = (options.as_object_mut(), extra.as_object()) {
        o.extend(extra.clone());
    }
    let request = PdfRequest {
        content: Some(content.to_owned()),
        pdf_options: Some(serde_json::from_value(options)?),
        ..PdfRequest::default()
    };
    Ok(request.validate(UrlPolicy::PRODUCTION).map_err(|e| anyhow::anyhow!(e.message))?.spec)
}

fn print_params() -> PrintToPdfParams {
    let options = serde_json::from_str(r#"{"format":"A4","printBackground":true}"#).expect("valid");
    tailpdf_renderer::engine::pdf::print_params(&options, "").expect("valid options")
}

fn e(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{err}")
}

/// Render times of `spec`, one at a time, after a warm-up.
async fn latency(
    engine: &Engine,
    spec: &RenderSpec,
    n: usize,
    warmup: usize,
) -> anyhow::Result<Stats> {
    let mut samples = Vec::new();
    for i in 0..(warmup + n) {
        let t = Instant::now();
        engine.render(spec).await.map_err(e)?;
        if i >= warmup {
            samples.push(t.elapsed());
        }
    }
    Ok(stats(samples))
}

/// CPU milliseconds per PDF, by process kind (`tailpdf_renderer::measure::cpu_by_kind`).
type CpuPerPdf = BTreeMap<String, f64>;

/// PDF/s of `spec` through an engine of `tabs` tabs, twice as many renders in flight, and the
/// CPU time each PDF took: this process's (the engine's) and its Chromium's.
async fn throughput(
    args: &Args,
    cache: &Path,
    (tabs, sandbox): (usize, SandboxMode),
    spec: &RenderSpec,
    warmup: usize,
) -> anyhow::Result<(f64, CpuPerPdf)> {
    let cfg = with_sandbox(&args.chromium, tabs, cache, sandbox);
    let engine = Engine::start(cfg).await.map_err(e)?;
    let run = |n: usize| {
        let engine = engine.clone();
        let spec = spec.clone();
        async move {
            let jobs = (0..n).map(|_| {
                let engine = engine.clone();
                let spec = spec.clone();
                async move { engine.render(&spec).await }
            });
            futures::stream::iter(jobs).buffer_unordered(tabs * 2).collect::<Vec<_>>().await
        }
    };
    run(warmup * tabs).await;
    let cpu = || measure::cpu_by_kind(std::process::id());
    let before = cpu();
    let t = Instant::now();
    let results = run(args.throughput_renders).await;
    let took = t.elapsed();
    let spent = measure::cpu_between(&before, &cpu());
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} renders failed");
    engine.shutdown(Duration::from_secs(5)).await;
    let n = args.throughput_renders as f64;
    Ok((n / took.as_secs_f64(), spent.into_iter().map(|(k, s)| (k, s * 1e3 / n)).collect()))
}

#[derive(serde::Deserialize)]
struct Peer {
    /// Measured by the first run only.
    p50_ms: Option<f64>,
    pdf_per_s: BTreeMap<String, f64>,
    /// By renders at once.
    cpu_ms_per_pdf: BTreeMap<String, CpuPerPdf>,
}

/// The peer's two modes.
#[derive(serde::Deserialize)]
struct Peers {
    reused: Peer,
    fresh: Peer,
}

impl Peers {
    /// Adds the figures of a run at other levels.
    fn merge(&mut self, other: Peers) {
        for (mine, theirs) in [(&mut self.reused, other.reused), (&mut self.fresh, other.fresh)] {
            mine.p50_ms = mine.p50_ms.or(theirs.p50_ms);
            mine.pdf_per_s.extend(theirs.pdf_per_s);
            mine.cpu_ms_per_pdf.extend(theirs.cpu_ms_per_pdf);
        }
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The pinned Tailwind CLI's CSS for `content`, scanning only that content (as the renderer's
/// parity test makes it).
fn cli_css(content: &str) -> anyhow::Result<String> {
    // Inside the workspace, so that `@import "tailwindcss"` resolves to its node_modules.
    let dir = tempfile::Builder::new().prefix(".bench-css-").tempdir_in(workspace())?;
    std::fs::write(dir.path().join("doc.html"), content)?;
    std::fs::write(
        dir.path().join("input.css"),
        "@import \"tailwindcss\" source(none);\n@source \"./doc.html\";\n",
    )?;
    let bin = workspace().join("node_modules/.bin");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new(bin.join("tailwindcss"))
        .current_dir(dir.path())
        .env("PATH", path)
        .args(["--minify", "-i", "input.css", "-o", "out.css"])
        .output()
        .context("the Tailwind CLI (run `make setup`)")?;
    anyhow::ensure!(
        out.status.success(),
        "tailwindcss failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(std::fs::read_to_string(dir.path().join("out.css"))?)
}

/// The Puppeteer peer on `html` (ready-made CSS): a reused page, and a fresh browser context
/// per render, at `level` renders at once, and their latency if `p50`.
fn peer(args: &Args, html: &str, level: usize, p50: bool) -> anyhow::Result<Peers> {
    let renders = (args.throughput_renders / 2).max(20);
    Ok(serde_json::from_slice(&peer_run(args, html, level, "reused,fresh", p50, renders)?)?)
}

/// The peer's JSON line for `modes` (see renderer/bench/puppeteer-peer.mjs).
fn peer_run(
    args: &Args,
    html: &str,
    level: usize,
    modes: &str,
    p50: bool,
    renders: usize,
) -> anyhow::Result<Vec<u8>> {
    let root = workspace();
    let node = root.join("node_modules/.bin/node");
    let script = root.join("renderer/bench/puppeteer-peer.mjs");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("doc.html");
    std::fs::write(&file, html)?;
    let out = std::process::Command::new(&node)
        .arg(&script)
        .arg(&args.chromium)
        .arg(&file)
        .arg(renders.to_string())
        .arg(level.to_string())
        .arg(modes)
        .args(p50.then_some("p50"))
        .output()
        .with_context(|| format!("{} (run `make setup`)", node.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "the peer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out.stdout)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let content = std::fs::read_to_string(&args.input)
        .with_context(|| format!("{}", args.input.display()))?;
    // The same invoice with a script: it gets a browser context of its own.
    let scripted = format!("{content}<script>document.title = 'Invoice';</script>");
    let spec = spec_of(&content)?;
    let scripted_spec = spec_of(&scripted)?;
    let cache = tempfile::tempdir()?;
    let warmup = (args.renders / 10).max(5);
    if args.postprocess_only {
        return postprocess_costs(&args, &content, cache.path(), warmup).await;
    }
    if args.batch_only {
        return batch_costs(&args, &content, cache.path()).await;
    }
    if args.scripted_only {
        return scripted_costs(&args, &content, cache.path()).await;
    }
    if let Some(other) = &args.against {
        return side_by_side(&args, other, &content, cache.path()).await;
    }

    // Engine latency, one tab: a static document, then one with a script.
    let engine = Engine::start(config(&args.chromium, 1, cache.path())).await.map_err(e)?;
    let classes: BTreeSet<String> = document::class_candidates(&content);
    let css = engine.tailwind_css(&classes, None).await.map_err(e)?;
    let pdf_size = engine.render(&spec).await.map_err(e)?.pdf.len();
    let engine_stats = latency(&engine, &spec, args.renders, warmup).await?;
    let scripted_stats = latency(&engine, &scripted_spec, args.renders / 2, warmup).await?;
    anyhow::ensure!(engine.render(&scripted_spec).await.map_err(e)?.isolated);

    // Tailwind CSS: memo hits, then fresh generation (memo cleared before each call).
    let mut cached = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        engine.tailwind_css(&classes, None).await.map_err(e)?;
        cached.push(t.elapsed());
    }
    let config_json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r##"{"theme":{"extend":{"colors":{"brand":"#0f766e"}}}}"##)?;
    let mut uncached = Vec::new();
    let mut uncached_config = Vec::new();
    for (config, samples) in [(None, &mut uncached), (Some(&config_json), &mut uncached_config)] {
        for i in 0..(warmup + args.renders) {
            engine.clear_css_memo();
            let t = Instant::now();
            engine.tailwind_css(&classes, config).await.map_err(e)?;
            if i >= warmup {
                samples.push(t.elapsed());
            }
        }
    }
    engine.shutdown(Duration::from_secs(5)).await;

    // The floor: ready-made CSS (the Tailwind CLI's), a reused tab, bare printToPDF.
    let reference_css = cli_css(&content)?;
    let bare = BareBrowser::launch(&args.chromium).await.map_err(e)?;
    let page = bare.new_page().await.map_err(e)?;
    let html = document::build_document(&content, &document::style_element(&reference_css, None));
    let mut floor = Vec::new();
    for i in 0..(warmup + args.renders) {
        let t = Instant::now();
        page.set_content(html.clone()).await?;
        let pdf = page.pdf(print_params()).await?;
        if i >= warmup {
            floor.push(t.elapsed());
        }
        anyhow::ensure!(pdf.starts_with(b"%PDF"), "the floor printed no PDF");
    }
    let floor_stats = stats(floor);
    drop(page);
    bare.close().await;

    // The peer at each level right after the engine: the machine's speed drifts by minutes.
    let mut rates = Vec::new();
    let mut peer: Option<Peers> = None;
    for tabs in [1, 2, 4] {
        let measured = throughput(&args, cache.path(), (tabs, SandboxMode::Auto), &spec, warmup);
        rates.push((tabs, measured.await?));
        if !args.no_peer {
            let more = self::peer(&args, &html, tabs, peer.is_none())?;
            match &mut peer {
                Some(peer) => peer.merge(more),
                None => peer = Some(more),
            }
        }
    }
    let two = (2, SandboxMode::Auto);
    let (scripted_rate, _) = throughput(&args, cache.path(), two, &scripted_spec, warmup).await?;
    // What Chromium's sandbox costs (as root, `auto` runs Chromium sandboxed as another user;
    // the peer runs without one).
    let unsandboxed = throughput(&args, cache.path(), (2, SandboxMode::Off), &spec, warmup).await?;

    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!(
        "## {} ({} bytes of PDF), {} renders after {} warm-up; {}",
        args.input.display(),
        pdf_size,
        args.renders,
        warmup,
        measure::revision()
    );
    println!();
    println!(
        "Tailwind CSS of the floor and the peers: the pinned CLI's, {} bytes minified (the \
         engine's: {} bytes).",
        reference_css.len(),
        css.len()
    );
    println!();
    println!("| what | p50 | p95 | mean |");
    println!("|---|---|---|---|");
    row("floor: ready-made CSS, reused tab, bare printToPDF", &floor_stats, ms);
    row("engine: whole pipeline, 1 tab", &engine_stats, ms);
    println!("| engine p50 / floor p50 | {:.2}× | | |", ratio(engine_stats.p50, floor_stats.p50));
    row("engine, the invoice with a script (a context of its own), 1 tab", &scripted_stats, ms);
    println!(
        "| scripted p50 / floor p50 | {:.2}× | | |",
        ratio(scripted_stats.p50, floor_stats.p50)
    );
    if let Some(peers) = &peer {
        for (what, peer) in
            [("a reused page", &peers.reused), ("a fresh context per render", &peers.fresh)]
        {
            let p50 = peer.p50_ms.unwrap_or(f64::NAN);
            println!(
                "| Puppeteer, {what}, p50 / floor p50 | {:.2}× ({p50:.2} ms) | | |",
                p50 / (floor_stats.p50.as_secs_f64() * 1e3),
            );
        }
    }
    row(&format!("Tailwind CSS, cached ({} classes)", classes.len()), &stats(cached), us);
    row("Tailwind CSS, not cached", &stats(uncached), ms);
    row("Tailwind CSS, not cached, with a config", &stats(uncached_config), ms);
    println!();
    println!(
        "| tabs (Puppeteer: renders at once) | engine | Puppeteer, a reused page | Puppeteer, a \
         fresh context per render | engine / reused page (goal ≥ 1×) | engine / fresh context \
         (goal ≥ 1.5×) |"
    );
    println!("|---|---|---|---|---|---|");
    let mut met = true;
    for (tabs, (rate, _)) in &rates {
        let of = |p: &Peer| p.pdf_per_s.get(&tabs.to_string()).copied();
        match peer.as_ref().and_then(|p| Some((of(&p.reused)?, of(&p.fresh)?))) {
            Some((reused, fresh)) => {
                met &= rate / reused >= 1.0 && rate / fresh >= 1.5;
                println!(
                    "| {tabs} | {rate:.1} PDF/s | {reused:.1} PDF/s | {fresh:.1} PDF/s | {:.2}× | \
                     {:.2}× |",
                    rate / reused,
                    rate / fresh
                );
            }
            None => println!("| {tabs} | {rate:.1} PDF/s | | | | |"),
        }
    }
    println!("| 2, the invoice with a script | {scripted_rate:.1} PDF/s | | | | |");
    println!("| 2, Chromium's sandbox off | {:.1} PDF/s | | | | |", unsandboxed.0);
    if peer.is_some() {
        println!();
        println!(
            "Goals (issue 14): at least 1.5× Puppeteer with a fresh context and 1× Puppeteer \
             with a reused page, at every level: {}.",
            if met { "met" } else { "NOT met" }
        );
    }
    println!();
    cpu_table(&rates, &unsandboxed.1, peer.as_ref());
    println!();
    postprocess_costs(&args, &content, cache.path(), warmup).await?;
    println!();
    batch_costs(&args, &content, cache.path()).await?;
    println!();
    scripted_costs(&args, &content, cache.path()).await?;
    let whole = Path::new(WHOLE_CHROMIUM);
    if whole.exists() && args.chromium != whole {
        println!();
        side_by_side(&args, whole, &content, cache.path()).await?;
    }
    Ok(())
}

/// Debian's whole Chromium (the default before the headless shell), measured beside
/// `--chromium` by a whole `make bench`.
const WHOLE_CHROMIUM: &str = "/usr/bin/chromium";

/// A bar chart drawn by a bundled script, as report generators inline one (Chart.js, 208 KB).
fn with_chart(content: &str) -> anyhow::Result<String> {
    let path = workspace().join("node_modules/chart.js/dist/chart.umd.min.js");
    let chart = std::fs::read_to_string(&path)
        .with_context(|| format!("{} (run `make setup`)", path.display()))?;
    Ok(format!(
        "{content}<div class=\"px-8 pb-8\"><canvas id=\"chart\" width=\"640\" height=\"260\"></canvas></div>\
         <script>{chart}</script><script>new Chart(document.getElementById('chart'), {{type: 'bar', \
         options: {{animation: false, responsive: false}}, data: {{labels: ['Jan', 'Feb', 'Mar', \
         'Apr', 'May', 'Jun'], datasets: [{{label: 'Revenue', data: [12, 19, 3, 5, 2, 3], \
         backgroundColor: '#4f46e5'}}]}}}});</script>"
    ))
}

/// Whose documents a scripted stream is.
#[derive(Clone, Copy)]
enum Accounts {
    One,
    /// A new account every document: no context is ever warm for it.
    EachNew,
}

/// PDF/s of `spec` on `chromium` at 2 tabs (4 in flight) for `accounts`, with `warm` contexts
/// kept (None: the default), and how many renders reused a warm context. (No CPU time per PDF
/// here: the page processes of disposed contexts end during the run, and an ended process is
/// not read.)
async fn scripted_rate(
    args: &Args,
    chromium: &Path,
    cache: &Path,
    spec: &RenderSpec,
    accounts: Accounts,
    warm: Option<usize>,
) -> anyhow::Result<(f64, u64)> {
    let tabs = 2;
    let mut cfg = config(chromium, tabs, cache);
    cfg.warm_contexts = warm;
    let engine = Engine::start(cfg).await.map_err(e)?;
    let run = |from: usize, n: usize| {
        let engine = engine.clone();
        let spec = spec.clone();
        async move {
            let jobs = (from..from + n).map(|i| {
                let engine = engine.clone();
                let spec = spec.clone();
                let account = match accounts {
                    Accounts::One => String::from("acct-1"),
                    Accounts::EachNew => format!("acct-{i}"),
                };
                async move { engine.render_for(&spec, &Requester::new(&account, Lane::Job)).await }
            });
            futures::stream::iter(jobs).buffer_unordered(tabs * 2).collect::<Vec<_>>().await
        }
    };
    let warmup = (args.scripted_documents / 10).max(5);
    run(0, warmup).await;
    let reuses_before = engine.stats().warm_reuses;
    let t = Instant::now();
    let results = run(warmup, args.scripted_documents).await;
    let took = t.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    anyhow::ensure!(failed == 0, "{failed} renders failed");
    anyhow::ensure!(results.iter().flatten().all(|r| r.isolated), "a scripted render was shared");
    let reuses = engine.stats().warm_reuses - reuses_before;
    engine.shutdown(Duration::from_secs(5)).await;
    Ok((args.scripted_documents as f64 / took.as_secs_f64(), reuses))
}

/// Documents that run scripts (issue 30): the invoice with a chart drawn by a bundled script,
/// at 2 tabs, from one account and from a new account every document, and from one account
/// with no context kept warm (as before warm contexts), against Puppeteer with a fresh browser
/// context per render (the HTML with the CLI's CSS); each variant once per round, in turn.
async fn scripted_costs(args: &Args, content: &str, cache: &Path) -> anyhow::Result<()> {
    let scripted = with_chart(content)?;
    let spec = spec_of(&scripted)?;
    let css = cli_css(&scripted)?;
    let html = document::build_document(&scripted, &document::style_element(&css, None));
    #[derive(serde::Deserialize)]
    struct Fresh {
        fresh: Peer,
    }
    let variants: [(&str, Accounts, Option<usize>); 3] = [
        ("engine, one account", Accounts::One, None),
        ("engine, a new account every document", Accounts::EachNew, None),
        ("engine, one account, no warm context (`--warm-contexts 0`)", Accounts::One, Some(0)),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len() + 1];
    let mut reuses = vec![0u64; variants.len()];
    for _ in 0..args.scripted_rounds {
        for (i, (_, accounts, warm)) in variants.iter().enumerate() {
            let (rate, reused) =
                scripted_rate(args, &args.chromium, cache, &spec, *accounts, *warm).await?;
            rates[i].push(rate);
            reuses[i] += reused;
        }
        if !args.no_peer {
            let out = peer_run(args, &html, 2, "fresh", false, args.scripted_documents)?;
            let peer: Fresh = serde_json::from_slice(&out)?;
            rates[variants.len()].push(peer.fresh.pdf_per_s.get("2").copied().unwrap_or(f64::NAN));
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let peer = median(&rates[variants.len()]);
    println!(
        "### Documents that run scripts: the invoice with a Chart.js bar chart ({} KB of HTML), \
         2 tabs, {} documents per variant, {} rounds; {}",
        scripted.len() / 1024,
        args.scripted_documents,
        args.scripted_rounds,
        measure::revision()
    );
    println!();
    println!(
        "| variant | PDF/s, each round | median | / Puppeteer fresh context (goal ≥ 2×) | warm \
         reuses |"
    );
    println!("|---|---|---|---|---|");
    let rows = variants
        .iter()
        .map(|v| v.0)
        .chain(std::iter::once("Puppeteer, a fresh context per render"));
    for (i, what) in rows.enumerate() {
        if rates[i].is_empty() {
            continue;
        }
        let each: Vec<String> = rates[i].iter().map(|r| format!("{r:.1}")).collect();
        println!(
            "| {what} | {} | {:.1} | {:.2}× | {} |",
            each.join(" / "),
            median(&rates[i]),
            median(&rates[i]) / peer,
            reuses.get(i).map_or(String::new(), u64::to_string),
        );
    }
    Ok(())
}

/// Per-document cost of a batch's documents (distinct invoices) rendered one by one and in
/// groups of 5, 20 and 50 on one tab, two renders (or groups) in flight, variants in turn each
/// round so that drift hits all alike.
async fn batch_costs(args: &Args, content: &str, cache: &Path) -> anyhow::Result<()> {
    let n = args.batch_documents.max(50);
    let specs = (0..n)
        .map(|i| {
            let doc = content
                .replace("#INV-2024-1234", &format!("#INV-2024-{}", 10_000 + i))
                .replace("Globex Corporation", &format!("Client {i}"));
            spec_of(&doc)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let engine = Engine::start(config(&args.chromium, 1, cache)).await.map_err(e)?;
    let sizes = [1usize, 5, 20, 50];
    let rounds = args.batch_rounds.max(1);
    let mut per_doc = vec![Vec::new(); sizes.len()];
    // Where a grouped document's time goes: (group, step) → total, documents.
    let mut steps: BTreeMap<(usize, &'static str), (Duration, u32)> = BTreeMap::new();
    // Warm-up: each variant once over a few documents.
    for size in sizes {
        for chunk in specs[..size.max(5)].chunks(size) {
            engine.render_group(chunk).await;
        }
    }
    let before = engine.stats();
    for _ in 0..rounds {
        for (v, size) in sizes.iter().enumerate() {
            let t = Instant::now();
            // Two in flight on the one tab, as the service runs them (and as the throughput
            // section runs single renders): one prints while the other is cut and finished.
            let done: Vec<_> = futures::stream::iter(specs.chunks(*size))
                .map(|chunk| async {
                    if chunk.len() == 1 {
                        vec![engine.render(&chunk[0]).await]
                    } else {
                        engine.render_group(chunk).await
                    }
                })
                .buffer_unordered(2)
                .collect()
                .await;
            for results in done {
                for r in results {
                    let r = r.map_err(e)?;
                    anyhow::ensure!(r.pdf.starts_with(b"%PDF"), "no PDF");
                    for step in &r.steps {
                        let entry = steps.entry((*size, step.name)).or_default();
                        entry.0 += step.took;
                        entry.1 += 1;
                    }
                }
            }
            per_doc[v].push(t.elapsed() / n as u32);
        }
    }
    let after = engine.stats();
    engine.shutdown(Duration::from_secs(5)).await;
    anyhow::ensure!(after.group_fallbacks == before.group_fallbacks, "a group fell back");
    let grouped = (after.grouped - before.grouped) as usize;
    anyhow::ensure!(grouped == rounds * 3 * n, "{grouped} documents grouped");
    println!(
        "### Batches: per-document cost of {n} distinct invoices, 1 tab, 2 in flight, {rounds} rounds\n"
    );
    println!("| how | per document (mean of rounds) | best round | documents per second | throughput vs alone | round by round: median (range) |");
    println!("|---|---|---|---|---|---|");
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len() as u32;
    let alone = mean(&per_doc[0]);
    for (v, size) in sizes.iter().enumerate() {
        let m = mean(&per_doc[v]);
        let what = if *size == 1 {
            String::from("alone (one render each)")
        } else {
            format!("groups of {size}")
        };
        // Each round's alone against the same round's groups: the machine's speed drifts
        // within a run, a round's variants run within seconds of each other.
        let mut paired: Vec<f64> = per_doc[0]
            .iter()
            .zip(&per_doc[v])
            .map(|(a, g)| a.as_secs_f64() / g.as_secs_f64())
            .collect();
        paired.sort_by(f64::total_cmp);
        let median = paired[paired.len() / 2] / 2.0 + paired[(paired.len() - 1) / 2] / 2.0;
        println!(
            "| {what} | {} | {} | {:.1} | {:.2}× | {median:.2}× ({:.2}–{:.2}) |",
            ms(m),
            ms(*per_doc[v].iter().min().unwrap_or(&m)),
            1.0 / m.as_secs_f64(),
            alone.as_secs_f64() / m.as_secs_f64(),
            paired[0],
            paired[paired.len() - 1],
        );
    }
    println!("\nPer document, the mean of each step (a group's print and split shared by its documents):\n");
    println!("| how | {} |", ["group print", "split", "metadata"].join(" | "));
    println!("|---|---|---|---|");
    for size in sizes {
        let cell = |name: &str| {
            steps.get(&(size, name)).map_or(String::from("–"), |(d, n)| ms(*d / (*n).max(1)))
        };
        let what = if size == 1 { String::from("alone") } else { format!("groups of {size}") };
        println!("| {what} | {} | {} | {} |", cell("group print"), cell("split"), cell("metadata"));
    }
    let at20 = alone.as_secs_f64() / mean(&per_doc[2]).as_secs_f64();
    println!(
        "\nGoal (issue 17): at least 3× the per-document throughput in groups of 20: {} ({at20:.2}×).",
        if at20 >= 3.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// What `tagged`, `outline` and each post-processing step cost on the document: the variants
/// in turn (one render of each per round, so drift hits all alike), one tab; each step's own
/// time from the engine's account of it.
async fn postprocess_costs(
    args: &Args,
    content: &str,
    cache: &Path,
    warmup: usize,
) -> anyhow::Result<()> {
    use serde_json::json;
    let variants = [
        ("untagged, no outline (Chromium's least)", json!({"tagged": false, "outline": false})),
        ("tagged, no outline", json!({"tagged": true, "outline": false})),
        ("defaults (tagged, outline)", json!({})),
        (
            "+ metadata (title, author, subject, keywords, date)",
            json!({"metadata": {"title": "Invoice 2024-001", "author": "ACME GmbH",
                "subject": "Invoice", "keywords": ["invoice", "2024"],
                "creationDate": "2024-12-15T10:30:00Z"}}),
        ),
        ("+ pdfa 2b", json!({"pdfa": "2b"})),
        (
            "+ password (AES-256, qpdf)",
            json!({"password": {"user": "open", "permissions": {"copy": false}}}),
        ),
    ];
    let specs = variants
        .iter()
        .map(|(_, extra)| spec_with(content, extra.clone()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let engine = Engine::start(config(&args.chromium, 1, cache)).await.map_err(e)?;
    let n = args.renders / 2;
    let mut times = vec![Vec::new(); specs.len()];
    let mut steps: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut sizes = vec![0; specs.len()];
    for round in 0..(warmup + n) {
        for (i, spec) in specs.iter().enumerate() {
            let t = Instant::now();
            let rendered = engine.render(spec).await.map_err(e)?;
            if round >= warmup {
                times[i].push(t.elapsed());
                sizes[i] = rendered.pdf.len();
                for step in &rendered.steps {
                    if i == 2 || step.name != "metadata" {
                        steps.entry(step.name).or_default().push(step.took);
                    }
                }
            }
        }
    }
    engine.shutdown(Duration::from_secs(5)).await;
    let base = stats(times[2].clone()).p50;
    println!(
        "## Post-processing and tagging on {}, 1 tab, {n} rounds of each after {warmup}; {}",
        args.input.display(),
        measure::revision()
    );
    println!();
    println!("| options | p50 | p95 | p50 / defaults p50 | PDF bytes |");
    println!("|---|---|---|---|---|");
    for ((what, _), (samples, size)) in variants.iter().zip(times.into_iter().zip(sizes)) {
        let s = stats(samples);
        println!(
            "| {what} | {} | {} | {:.3}× | {size} |",
            ms(s.p50),
            ms(s.p95),
            s.p50.as_secs_f64() / base.as_secs_f64()
        );
    }
    println!();
    println!("| step (its own time) | p50 | p95 | mean | mean / defaults p50 |");
    println!("|---|---|---|---|---|");
    for (name, samples) in steps {
        let s = stats(samples);
        println!(
            "| {name} | {} | {} | {} | {:.1}% |",
            ms(s.p50),
            ms(s.p95),
            ms(s.mean),
            100.0 * s.mean.as_secs_f64() / base.as_secs_f64()
        );
    }
    Ok(())
}

/// Where each PDF's CPU time went, the engine's against the peer's with a reused page: at
/// two tabs on two cores both are CPU-bound, so this is what sets their throughput.
fn cpu_table(rates: &[(usize, (f64, CpuPerPdf))], unsandboxed: &CpuPerPdf, peer: Option<&Peers>) {
    const KINDS: [(&str, &str); 5] = [
        ("host", "engine / node"),
        ("browser", "Chromium browser"),
        ("renderer", "Chromium renderers"),
        ("gpu", "Chromium GPU"),
        ("other", "Chromium, other"),
    ];
    // A kind's milliseconds, or the total for "".
    let cell = |m: Option<&CpuPerPdf>, kind: &str| {
        let v = match kind {
            "" => m.map(|m| m.values().sum::<f64>()),
            kind => m.and_then(|m| m.get(kind)).copied(),
        };
        v.map_or(String::from("—"), |v| format!("{v:.1}"))
    };
    print!("| CPU ms per PDF |");
    for (tabs, _) in rates {
        print!(" engine, {tabs} tabs | Puppeteer reused, {tabs} at once |");
    }
    println!(" engine, 2 tabs, no sandbox |");
    println!("|---|{}---|", "---|---|".repeat(rates.len()));
    for (kind, name) in KINDS.into_iter().chain([("", "total")]) {
        print!("| {name} |");
        for (tabs, (_, cpu)) in rates {
            let theirs = peer.and_then(|p| p.reused.cpu_ms_per_pdf.get(&tabs.to_string()));
            print!(" {} | {} |", cell(Some(cpu), kind), cell(theirs, kind));
        }
        println!(" {} |", cell(Some(unsandboxed), kind));
    }
}

/// One Chromium build's figures in the side-by-side.
#[derive(Default)]
struct Build {
    floor_ms: Vec<f64>,
    engine_ms: Vec<f64>,
    start_ms: Vec<f64>,
    rates: BTreeMap<usize, Vec<f64>>,
    scripted: Vec<f64>,
    as_is_mib: Vec<f64>,
    rest_mib: Vec<f64>,
    load_mib: Vec<f64>,
}

/// `chromium` (the default build) and `other`, alternated each round so that drift falls on
/// both alike: bare printToPDF p50 (the floor), the engine's p50 at 1 tab, its start (Chromium
/// launched and warmed: the service's cold start), PDF/s at 1, 2 and 4 tabs, scripted
/// documents from one account at 2 tabs, and Chromium's PSS under load (the most seen during
/// the 4-tab run) and at rest (after its garbage was collected, `--rest-after`).
async fn side_by_side(
    args: &Args,
    other: &Path,
    content: &str,
    cache: &Path,
) -> anyhow::Result<()> {
    let spec = spec_of(content)?;
    let scripted = spec_of(&with_chart(content)?)?;
    let html =
        document::build_document(content, &document::style_element(&cli_css(content)?, None));
    let builds = [args.chromium.clone(), other.to_path_buf()];
    let mut figures: Vec<Build> = builds.iter().map(|_| Build::default()).collect();
    let renders = args.renders.min(100);
    let warmup = (renders / 10).max(5);
    for _ in 0..args.against_rounds {
        for (chromium, fig) in builds.iter().zip(figures.iter_mut()) {
            let bare = BareBrowser::launch(chromium).await.map_err(e)?;
            let page = bare.new_page().await.map_err(e)?;
            let mut floor = Vec::new();
            for i in 0..(warmup + renders) {
                let t = Instant::now();
                page.set_content(html.clone()).await?;
                page.pdf(print_params()).await?;
                if i >= warmup {
                    floor.push(t.elapsed());
                }
            }
            fig.floor_ms.push(stats(floor).p50.as_secs_f64() * 1e3);
            drop(page);
            bare.close().await;

            for tabs in [1, 2, 4] {
                let mut cfg = config(chromium, tabs, cache);
                cfg.rest_after = Duration::from_secs(1);
                let t = Instant::now();
                let engine = Engine::start(cfg).await.map_err(e)?;
                engine.warm().await;
                fig.start_ms.push(t.elapsed().as_secs_f64() * 1e3);
                if tabs == 1 {
                    let p50 = latency(&engine, &spec, renders, warmup).await?.p50;
                    fig.engine_ms.push(p50.as_secs_f64() * 1e3);
                }
                let pid = engine.browser_pid().await.context("no Chromium")?;
                let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
                let sampler = tokio::spawn({
                    let peak = peak.clone();
                    async move {
                        loop {
                            let pss = measure::tree_pss_kib(pid);
                            peak.fetch_max(pss, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(250)).await;
                        }
                    }
                });
                let jobs = (0..warmup * tabs + args.throughput_renders).map(|i| {
                    let engine = engine.clone();
                    let spec = spec.clone();
                    async move { (i, Instant::now(), engine.render(&spec).await) }
                });
                let t = Instant::now();
                let mut measured_from = None;
                let mut done = 0usize;
                let mut results = futures::stream::iter(jobs).buffer_unordered(tabs * 2);
                while let Some((i, _, result)) = results.next().await {
                    result.map_err(e)?;
                    if i + 1 == warmup * tabs {
                        measured_from = Some(Instant::now());
                    }
                    done += 1;
                }
                drop(results);
                sampler.abort();
                let from = measured_from.unwrap_or(t);
                let n = done.saturating_sub(warmup * tabs).max(1);
                fig.rates.entry(tabs).or_default().push(n as f64 / from.elapsed().as_secs_f64());
                if tabs == 4 {
                    fig.load_mib
                        .push(peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0);
                }
                if tabs == 2 {
                    // As it is (what a renderer held at rest before `--rest-after`), then
                    // collected.
                    fig.as_is_mib.push(measure::tree_pss_kib(pid) as f64 / 1024.0);
                    let before = engine.stats().rest_collections;
                    let waited = Instant::now();
                    while engine.stats().rest_collections == before
                        && waited.elapsed() < Duration::from_secs(10)
                    {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    fig.rest_mib.push(measure::tree_pss_kib(pid) as f64 / 1024.0);
                }
                engine.shutdown(Duration::from_secs(5)).await;
            }

            let (rate, _) =
                scripted_rate(args, chromium, cache, &scripted, Accounts::One, None).await?;
            fig.scripted.push(rate);
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "### {} against {}, {} rounds alternated; {}",
        other.display(),
        args.chromium.display(),
        args.against_rounds,
        measure::revision()
    );
    println!();
    println!("| median (each round) | {} | {} | ratio |", args.chromium.display(), other.display());
    println!("|---|---|---|---|");
    let line = |what: &str, unit: &str, a: &[f64], b: &[f64]| {
        let each = |v: &[f64]| v.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>().join(" / ");
        println!(
            "| {what} | {:.1} {unit} ({}) | {:.1} {unit} ({}) | {:.2}× |",
            median(a),
            each(a),
            median(b),
            each(b),
            median(b) / median(a)
        );
    };
    let [a, b] = [&figures[0], &figures[1]];
    line("floor p50 (bare printToPDF)", "ms", &a.floor_ms, &b.floor_ms);
    line("engine p50, 1 tab", "ms", &a.engine_ms, &b.engine_ms);
    line("start (launch + warm-up), 1/2/4 tabs", "ms", &a.start_ms, &b.start_ms);
    for tabs in [1, 2, 4] {
        let none = Vec::new();
        let of = |f: &Build| f.rates.get(&tabs).cloned().unwrap_or_else(|| none.clone());
        line(&format!("PDF/s, {tabs} tabs"), "", &of(a), &of(b));
    }
    line("scripted (Chart.js), one account, 2 tabs, PDF/s", "", &a.scripted, &b.scripted);
    line("Chromium PSS after 2 tabs, as it is", "MiB", &a.as_is_mib, &b.as_is_mib);
    line("Chromium PSS at rest after 2 tabs, collected", "MiB", &a.rest_mib, &b.rest_mib);
    line("Chromium PSS under load, 4 tabs, most seen", "MiB", &a.load_mib, &b.load_mib);
    Ok(())
}
