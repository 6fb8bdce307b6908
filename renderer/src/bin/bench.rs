//! `tailpdf-bench`: the render engine measured against its floor.
//!
//!   cargo run --release -p tailpdf-renderer --bin tailpdf-bench [-- --renders 200]
//!
//! - floor: the same HTML with its Tailwind CSS ready-made, set into a reused tab and printed
//!   with bare CDP printToPDF (what no engine can beat);
//! - engine: the invoice through the whole engine (class scan, CSS, guard, DOM check, print);
//! - throughput with 1, 2 and 4 tabs; Tailwind CSS generation cached and uncached.
//!
//! Prints a Markdown report (BENCHMARKS.md keeps the figures).

use std::{
    collections::BTreeSet,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context;
use chromiumoxide::cdp::browser_protocol::page::PrintToPdfParams;
use clap::Parser;
use futures::StreamExt;
use tailpdf_renderer::{
    config::EngineConfig,
    document,
    engine::{BareBrowser, Engine},
};
use tailpdf_shared::{request::PdfRequest, RenderSpec, UrlPolicy};

#[derive(Parser)]
#[command(about = "Benchmarks the render engine against bare CDP printToPDF")]
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
    #[arg(long, default_value = "/usr/bin/chromium")]
    chromium: PathBuf,
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

fn config(chromium: &std::path::Path, tabs: usize, cache: &std::path::Path) -> EngineConfig {
    EngineConfig {
        chromium: chromium.to_path_buf(),
        tabs: Some(tabs),
        render_timeout: Duration::from_secs(30),
        restart_after: 0,
        fonts_api_base: "http://127.0.0.1:9/".parse().expect("a URL"),
        font_cache_dir: cache.to_path_buf(),
        font_timeout: Duration::from_secs(5),
        fetch_timeout: Duration::from_secs(5),
        max_resource_bytes: 20 << 20,
        allow_loopback: false,
        sandbox: tailpdf_renderer::config::SandboxMode::Auto,
    }
}

fn print_params() -> PrintToPdfParams {
    let options = serde_json::from_str(r#"{"format":"A4","printBackground":true}"#).expect("valid");
    tailpdf_renderer::pdf::print_params(&options, "").expect("valid options")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let content = std::fs::read_to_string(&args.input)
        .with_context(|| format!("{}", args.input.display()))?;
    let request = PdfRequest {
        content: Some(content.clone()),
        pdf_options: Some(serde_json::from_str(r#"{"format":"A4","printBackground":true}"#)?),
        ..PdfRequest::default()
    };
    let spec: RenderSpec =
        request.validate(UrlPolicy::PRODUCTION).map_err(|e| anyhow::anyhow!(e.message))?.spec;
    let cache = tempfile::tempdir()?;
    let warmup = (args.renders / 10).max(5);

    // Engine latency, one tab.
    let engine = Engine::start(config(&args.chromium, 1, cache.path()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let classes: BTreeSet<String> = document::class_candidates(&content);
    let css = engine.tailwind_css(&classes, None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut samples = Vec::new();
    let mut pdf_size = 0;
    for i in 0..(warmup + args.renders) {
        let t = Instant::now();
        let r = engine.render(&spec).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if i >= warmup {
            samples.push(t.elapsed());
        }
        pdf_size = r.pdf.len();
    }
    let engine_stats = stats(samples);

    // Tailwind CSS: memo hits, then fresh generation (memo cleared before each call).
    let mut cached = Vec::new();
    for _ in 0..2000 {
        let t = Instant::now();
        engine.tailwind_css(&classes, None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        cached.push(t.elapsed());
    }
    let mut uncached = Vec::new();
    for i in 0..(warmup + args.renders) {
        engine.clear_css_memo();
        let t = Instant::now();
        engine.tailwind_css(&classes, None).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        if i >= warmup {
            uncached.push(t.elapsed());
        }
    }
    let config_json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r##"{"theme":{"extend":{"colors":{"brand":"#0f766e"}}}}"##)?;
    let mut uncached_config = Vec::new();
    for i in 0..(warmup + args.renders) {
        engine.clear_css_memo();
        let t = Instant::now();
        engine
            .tailwind_css(&classes, Some(&config_json))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if i >= warmup {
            uncached_config.push(t.elapsed());
        }
    }
    engine.shutdown(Duration::from_secs(5)).await;

    // The floor: ready-made CSS, a reused tab, bare printToPDF.
    let bare = BareBrowser::launch(&args.chromium).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let page = bare.browser.new_page("about:blank").await?;
    let html = document::build_document(&content, &format!("<style>{css}</style>"));
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
    bare.close().await;

    // Throughput through the engine with 1, 2 and 4 tabs.
    let mut throughput = Vec::new();
    for tabs in [1, 2, 4] {
        let engine = Engine::start(config(&args.chromium, tabs, cache.path()))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
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
        let t = Instant::now();
        let results = run(args.throughput_renders).await;
        let took = t.elapsed();
        let failed = results.iter().filter(|r| r.is_err()).count();
        anyhow::ensure!(failed == 0, "{failed} renders failed");
        throughput.push((tabs, args.throughput_renders as f64 / took.as_secs_f64()));
        engine.shutdown(Duration::from_secs(5)).await;
    }

    let ratio = engine_stats.p50.as_secs_f64() / floor_stats.p50.as_secs_f64();
    println!(
        "## {} ({} bytes of PDF), {} renders after {} warm-up",
        args.input.display(),
        pdf_size,
        args.renders,
        warmup
    );
    println!();
    println!("| what | p50 | p95 | mean |");
    println!("|---|---|---|---|");
    println!(
        "| floor: ready-made CSS, reused tab, bare printToPDF | {} | {} | {} |",
        ms(floor_stats.p50),
        ms(floor_stats.p95),
        ms(floor_stats.mean)
    );
    println!(
        "| engine: whole pipeline, 1 tab | {} | {} | {} |",
        ms(engine_stats.p50),
        ms(engine_stats.p95),
        ms(engine_stats.mean)
    );
    println!("| engine p50 / floor p50 | {ratio:.2}× | | |");
    let c = stats(cached);
    println!(
        "| Tailwind CSS, cached ({} classes) | {} | {} | {} |",
        classes.len(),
        us(c.p50),
        us(c.p95),
        us(c.mean)
    );
    let u = stats(uncached);
    println!("| Tailwind CSS, not cached | {} | {} | {} |", ms(u.p50), ms(u.p95), ms(u.mean));
    let uc = stats(uncached_config);
    println!(
        "| Tailwind CSS, not cached, with a config | {} | {} | {} |",
        ms(uc.p50),
        ms(uc.p95),
        ms(uc.mean)
    );
    println!();
    println!("| tabs | throughput |");
    println!("|---|---|");
    for (tabs, rate) in throughput {
        println!("| {tabs} | {rate:.1} PDF/s |");
    }
    Ok(())
}
