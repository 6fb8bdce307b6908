//! The metadata step's cost (issue 30), before and after, in one run: on Chromium's PDF of the
//! invoice and of a 9,000-row table (hundreds of pages), the step as it is (an incremental
//! update: the trailer, catalog and Info read through the cross-reference table, the update
//! appended) against the step as it was (lopdf parses the whole file and writes it again,
//! `postprocess::bench::metadata_resaved`), rounds interleaved so the machine's drift hits
//! both alike. Not part of `make test`; figures go into BENCHMARKS.md:
//!
//!   cargo test --release --locked -p tailpdf-renderer --test metadata_bench -- --ignored --nocapture
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::time::{Duration, Instant};

use serde_json::json;
use tailpdf_e2e::pdf::run_on;
use tailpdf_renderer::{
    engine::{document, pdf::print_params, BareBrowser, Engine},
    measure,
    postprocess::bench,
};
use tailpdf_shared::pdf_options::PdfOptions;

const INVOICE: &str = include_str!("../../examples/invoice.html");

/// A 9,000-row table (the long document of BENCHMARKS.md's post-processing section), under
/// the API's 1 MB of content.
fn long_table() -> String {
    let rows: String = (0..9000)
        .map(|i| {
            format!(
                "<tr><td>{i}</td><td>Item number {i}</td><td class=\"text-right\">{}.{:02} €</td></tr>",
                (i * 37) % 1000,
                i % 100
            )
        })
        .collect();
    format!(
        "<title>Long table</title><h1 class=\"text-2xl font-bold\">Long table</h1>\
         <table class=\"w-full text-sm tabular-nums [&_td]:px-2 [&_td]:py-1 [&_tr]:border-b \
         [&_tr]:border-gray-200\">{rows}</table>"
    )
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn mean(samples: &[Duration]) -> Duration {
    samples.iter().sum::<Duration>() / u32::try_from(samples.len()).unwrap()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Samples of `rounds` interleaved rounds (after `warmup` more) of the step before, after, and
/// after with room left in the buffer it appends to (no copy of the file on growing it).
struct Samples {
    before: Vec<Duration>,
    after: Vec<Duration>,
    after_room: Vec<Duration>,
}

fn measure(pdf: &[u8], warmup: usize, rounds: usize) -> Samples {
    let mut s = Samples { before: Vec::new(), after: Vec::new(), after_room: Vec::new() };
    for round in 0..warmup + rounds {
        // The stage owns Chromium's bytes: the copies are the benchmark's, not the step's.
        // One exactly as long as the file (appending then copies it once into a larger
        // buffer), one with room (as the engine's read of a print in 8 MiB chunks often has).
        let exact = pdf.to_vec();
        let mut roomy = Vec::with_capacity(pdf.len() + 256 * 1024);
        roomy.extend_from_slice(pdf);
        let timed = |f: &mut dyn FnMut() -> Vec<u8>| {
            let t = Instant::now();
            let out = f();
            (t.elapsed(), out)
        };
        let mut exact = Some(exact);
        let mut roomy = Some(roomy);
        let mut new = || bench::metadata(exact.take().unwrap(), None).unwrap();
        let mut new_room = || bench::metadata(roomy.take().unwrap(), None).unwrap();
        let mut old = || bench::metadata_resaved(pdf, None).unwrap();
        // The order turns each round.
        let mut runs: [(usize, &mut dyn FnMut() -> Vec<u8>); 3] =
            [(0, &mut old), (1, &mut new), (2, &mut new_room)];
        runs.rotate_left(round % 3);
        let mut took = [Duration::ZERO; 3];
        for (which, f) in runs {
            let (d, out) = timed(f);
            took[which] = d;
            if round == 0 {
                let (code, text, err) = run_on("qpdf", &out, &["--check"], &[]);
                assert_eq!(code, 0, "{which}: {text}{err}");
                assert_eq!(out.starts_with(pdf), which != 0, "{which}");
            }
        }
        if round >= warmup {
            s.before.push(took[0]);
            s.after.push(took[1]);
            s.after_room.push(took[2]);
        }
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it in release, see the file's head"]
async fn metadata_step_before_and_after() {
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = common::engine_config("http://127.0.0.1:9/", cache.path());
    // The long table takes seconds to print.
    cfg.render_timeout = Duration::from_secs(120);
    let engine = Engine::start(cfg).await.unwrap();
    let bare = BareBrowser::launch(&tailpdf_renderer::config::EngineConfig::defaults().chromium)
        .await
        .unwrap();
    let page = bare.new_page().await.unwrap();
    let options: PdfOptions =
        serde_json::from_value(json!({"format": "A4", "printBackground": true})).unwrap();
    let mut pdfs = Vec::new();
    for (name, content) in [("invoice", INVOICE.to_owned()), ("9,000-row table", long_table())] {
        let css = engine.tailwind_css(&document::class_candidates(&content), None).await.unwrap();
        let html = document::build_document(&content, &document::style_element(&css, None));
        page.set_content(html).await.unwrap();
        let pdf = page.pdf(print_params(&options, "").unwrap()).await.unwrap();
        let pages = tailpdf_e2e::pdf::page_info(&pdf).0;
        pdfs.push((name, pdf, pages));
    }
    drop(page);
    bare.close().await;

    println!(
        "## The metadata step before (lopdf re-save) and after (incremental update); {}",
        measure::revision()
    );
    println!();
    println!(
        "| Chromium's PDF | rounds | before p50 (mean) | after p50 (mean) | after / before | \
         after, room to append, p50 (mean) | that / before |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut p50s = Vec::new();
    for (name, pdf, pages) in &pdfs {
        let (warmup, rounds) = if *pages > 10 { (3, 15) } else { (30, 300) };
        let s = measure(pdf, warmup, rounds);
        let p50 = [median(s.before.clone()), median(s.after.clone()), median(s.after_room.clone())];
        let cell = |p: Duration, samples: &[Duration]| format!("{} ({})", ms(p), ms(mean(samples)));
        println!(
            "| {name}: {pages} pages, {} bytes | {rounds} | {} | {} | {:.4}× | {} | {:.4}× |",
            pdf.len(),
            cell(p50[0], &s.before),
            cell(p50[1], &s.after),
            p50[1].as_secs_f64() / p50[0].as_secs_f64(),
            cell(p50[2], &s.after_room),
            p50[2].as_secs_f64() / p50[0].as_secs_f64(),
        );
        p50s.push(p50);
    }
    // The engine's own account of the step (`Rendered::steps`), as the service reports it:
    // Chromium's bytes as the engine reads them (in 8 MiB chunks), then the stage.
    let mut engine_p50 = Vec::new();
    for (i, content) in [INVOICE.to_owned(), long_table()].iter().enumerate() {
        let spec = common::spec(json!({"content": content,
            "pdfOptions": {"format": "A4", "printBackground": true}}));
        let mut took = Vec::new();
        for _ in 0..[30, 4][i] {
            let rendered = engine.render(&spec).await.unwrap();
            let step = rendered.steps.iter().find(|s| s.name == "metadata").unwrap();
            took.push(step.took);
        }
        engine_p50.push(median(took));
    }
    engine.shutdown(Duration::from_secs(5)).await;
    let growth = |i: usize| p50s[1][i].as_secs_f64() / p50s[0][i].as_secs_f64();
    // A batch's document comes parsed (cut from its group's PDF) and is written whole: by
    // lopdf before, by the stage's own writer now. The invoice parsed stands for one.
    let parsed = lopdf::Document::load_mem(&pdfs[0].1).unwrap();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    for round in 0..330 {
        let (a, b) = (parsed.clone(), parsed.clone());
        let t = Instant::now();
        let new = bench::metadata_parsed(a, None).unwrap();
        let new_took = t.elapsed();
        let t = Instant::now();
        let old = bench::metadata_parsed_resaved(b, None).unwrap();
        let old_took = t.elapsed();
        if round == 0 {
            for pdf in [&new, &old] {
                let (code, out, err) = run_on("qpdf", pdf, &["--check"], &[]);
                assert_eq!(code, 0, "{out}{err}");
            }
        }
        if round >= 30 {
            after.push(new_took);
            before.push(old_took);
        }
    }
    let (b, a) = (median(before.clone()), median(after.clone()));
    println!(
        "| invoice, parsed (a batch's document), written whole | 300 | {} ({}) | {} ({}) | {:.3}× | | |",
        ms(b),
        ms(mean(&before)),
        ms(a),
        ms(mean(&after)),
        a.as_secs_f64() / b.as_secs_f64()
    );
    println!();
    println!(
        "Long table / invoice, p50: before {:.1}×, after {:.1}×, after with room {:.1}×",
        growth(0),
        growth(1),
        growth(2)
    );
    println!(
        "The engine's account of the step (p50 of 30 and 4 renders): invoice {}, long table {} \
         ({:.1}×)",
        ms(engine_p50[0]),
        ms(engine_p50[1]),
        engine_p50[1].as_secs_f64() / engine_p50[0].as_secs_f64()
    );
}
