//! The PDF stays Chromium's (issue 30): post-processing appends what it changes as an
//! incremental update instead of writing the file again, so every object Chromium wrote keeps
//! its bytes and pages rasterise as Chromium's own. Chromium's PDFs here are its printToPDF
//! with the engine's parameters, in a bare tab; the stage runs on them as the engine runs it.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::{collections::BTreeSet, time::Duration};

use chromiumoxide::Page;
use common::{engine_config, spec};
use lopdf::{Document, Object, ObjectId};
use serde_json::{json, Value};
use tailpdf_e2e::pdf::{poppler, run_on};
use tailpdf_renderer::{
    engine::{document, pdf::print_params, BareBrowser, Engine},
    postprocess,
};
use tailpdf_shared::pdf_options::PdfOptions;

const INVOICE: &str = include_str!("../../examples/invoice.html");
const CORPUS: &str = include_str!("fixtures/tailwind-corpus.html");
/// An image, a link, transparency, a title (as tests/postprocess.rs renders).
const LINKED: &str = r#"<html lang="en"><head><title>Invoice Zoë #42</title></head>
<body class="p-8"><h1 class="text-2xl font-bold text-blue-700">Invoice</h1>
<p class="shadow-lg opacity-80 rounded bg-gray-100 p-4">Total <b>€ 1,234.50</b>,
<a href="https://example.com/pay" class="underline">pay here</a></p>
<img alt="" style="width:120px" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAFklEQVR4nGP8z8DwnwEJMDEggQQTAMk0AfwBzG9ZAAAAAElFTkSuQmCC">
<h2 class="text-lg">Items</h2><p>One item</p></body></html>"#;

/// A few pages: a table, headings, links between them.
fn pages() -> String {
    let rows: String = (0..160)
        .map(|i| {
            format!(
                "<tr class=\"border-b border-gray-200\"><td class=\"px-2 py-1\">{i}</td>\
                 <td class=\"px-2 py-1\"><a href=\"#h{}\">item {i}</a></td>\
                 <td class=\"px-2 py-1 text-right tabular-nums\">{}.{:02} €</td></tr>",
                i % 3,
                (i * 37) % 1000,
                i % 100
            )
        })
        .collect();
    let headings: String =
        (0..3).map(|i| format!("<h2 id=\"h{i}\" class=\"mt-8 text-xl\">Part {i}</h2>")).collect();
    format!("<h1 class=\"text-3xl\">Report</h1><table class=\"w-full text-sm\">{rows}</table>{headings}")
}

fn corpus() -> Vec<(&'static str, String)> {
    vec![
        ("invoice", INVOICE.to_owned()),
        ("linked", LINKED.to_owned()),
        ("tailwind corpus", CORPUS.to_owned()),
        ("pages", pages()),
    ]
}

/// Chromium's own PDFs: printToPDF in a bare tab, with the engine's CSS and print parameters.
struct Chromium {
    engine: Engine,
    bare: BareBrowser,
    page: Page,
    _cache: tempfile::TempDir,
}

impl Chromium {
    async fn start() -> Self {
        let cache = tempfile::tempdir().unwrap();
        let engine =
            Engine::start(engine_config("http://127.0.0.1:9/", cache.path())).await.unwrap();
        let bare =
            BareBrowser::launch(&tailpdf_renderer::config::EngineConfig::defaults().chromium)
                .await
                .unwrap();
        let page = bare.new_page().await.unwrap();
        Self { engine, bare, page, _cache: cache }
    }

    async fn print(&self, content: &str, options: &PdfOptions) -> Vec<u8> {
        let css = self.engine.tailwind_css(&document::class_candidates(content), None).await;
        let html = document::build_document(content, &document::style_element(&css.unwrap(), None));
        self.page.set_content(html).await.unwrap();
        let pdf = self.page.pdf(print_params(options, "").unwrap()).await.unwrap();
        assert!(pdf.starts_with(b"%PDF-1.4\n"), "{:?}", &pdf[..16]);
        pdf
    }

    async fn stop(self) {
        drop(self.page);
        self.bare.close().await;
        self.engine.shutdown(Duration::from_secs(5)).await;
    }
}

fn options(extra: Value) -> PdfOptions {
    let mut options = json!({"format": "A4", "printBackground": true});
    options.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(options).unwrap()
}

async fn post(pdf: &[u8], options: &PdfOptions) -> Vec<u8> {
    let cfg = engine_config("http://127.0.0.1:9/", std::path::Path::new("/nonexistent"));
    postprocess::run(pdf.to_vec(), options, &cfg.postprocess()).await.unwrap().0
}

/// The objects of `after` that differ from `before`'s of the same number.
fn replaced(before: &Document, after: &Document) -> BTreeSet<ObjectId> {
    before
        .objects
        .iter()
        .filter(|(id, o)| after.objects.get(id) != Some(o))
        .map(|(id, _)| *id)
        .collect()
}

/// What PDF/A must change: links not flagged to print (or hidden), interpolated images.
fn pdfa_changes(doc: &Document) -> BTreeSet<ObjectId> {
    let link = |d: &lopdf::Dictionary| {
        d.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Link")
            && d.get(b"F").and_then(Object::as_i64).unwrap_or(0) & (4 | 1 | 2 | 32 | 256) != 4
    };
    let image = |d: &lopdf::Dictionary| {
        d.get(b"Subtype").and_then(Object::as_name).ok() == Some(b"Image") && d.has(b"Interpolate")
    };
    doc.objects
        .iter()
        .filter(|(_, o)| match o {
            Object::Dictionary(d) => link(d),
            Object::Stream(s) => image(&s.dict),
            _ => false,
        })
        .map(|(id, _)| *id)
        .collect()
}

fn check(pdf: &[u8], what: &str) {
    let (code, out, err) = run_on("qpdf", pdf, &["--check"], &[]);
    assert_eq!(code, 0, "{what}: qpdf --check: {out}{err}");
    assert!(out.contains("No syntax or stream encoding errors"), "{what}: {out}");
}

fn field(pdf: &[u8], name: &str) -> Option<String> {
    poppler("pdfinfo", pdf, &[])
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_chromium_wrote_keeps_its_bytes() {
    let chromium = Chromium::start().await;
    let metadata = json!({"metadata": {"title": "Rechnung <42>", "author": "ACME GmbH",
        "subject": "Invoice", "keywords": ["a", "b"], "creationDate": "2024-12-15T10:30:00Z"}});
    for (name, content) in corpus() {
        let plain = options(json!({}));
        let original = chromium.print(&content, &plain).await;
        let before = Document::load_mem(&original).unwrap();
        let catalog = before.trailer.get(b"Root").unwrap().as_reference().unwrap();
        for (variant, extra) in [
            ("defaults", json!({})),
            ("metadata", metadata.clone()),
            ("pdfa", json!({"pdfa": "2b"})),
        ] {
            let what = format!("{name}, {variant}");
            let out = post(&original, &options(extra)).await;
            assert!(out.len() > original.len(), "{what}: nothing appended");
            if variant == "pdfa" {
                // PDF/A raises the header's version in place (one byte, no offset moves).
                assert_eq!(&out[..9], b"%PDF-1.7\n", "{what}");
                assert_eq!(out[8..original.len()], original[8..], "{what}: Chromium's bytes");
            } else {
                assert!(out.starts_with(&original), "{what}: Chromium's bytes are not a prefix");
            }
            check(&out, &what);
            // What the file now says of each object: Chromium's, but for those the update
            // replaces: the catalog, and for PDF/A the links and images it must fix (none in
            // Chromium's files: its links print, its images do not interpolate).
            let after = Document::load_mem(&out).unwrap();
            let mut expected = BTreeSet::from([catalog]);
            if variant == "pdfa" {
                expected.extend(pdfa_changes(&before));
            }
            assert_eq!(replaced(&before, &after), expected, "{what}");
            assert_eq!(field(&out, "Producer").as_deref(), Some(postprocess::metadata::PRODUCER));
        }
        let out = post(&original, &options(metadata.clone())).await;
        assert_eq!(field(&out, "Title").as_deref(), Some("Rechnung <42>"), "{name}");
        assert_eq!(field(&out, "Author").as_deref(), Some("ACME GmbH"), "{name}");
        assert_eq!(field(&out, "CreationDate").as_deref(), Some("Sun Dec 15 10:30:00 2024 UTC"));
        let xmp = poppler("pdfinfo", &out, &["-meta"]);
        assert!(xmp.contains("<pdf:Keywords>a, b</pdf:Keywords>"), "{name}: {xmp}");
    }
    chromium.stop().await;
}

/// Every page of `pdf` at `dpi`, as pdftoppm writes them.
fn rasters(pdf: &[u8], dpi: u32) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftoppm")
        .args(["-r", &dpi.to_string()])
        .arg(&path)
        .arg(dir.path().join("p"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ppm"))
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_rasterise_as_chromium_s_own() {
    let chromium = Chromium::start().await;
    for (name, content) in corpus() {
        let original = chromium.print(&content, &options(json!({}))).await;
        let pages = rasters(&original, 50);
        assert!(!pages.is_empty());
        for extra in [json!({}), json!({"pdfa": "2b"})] {
            let out = post(&original, &options(extra.clone())).await;
            assert_eq!(field(&out, "Page size"), field(&original, "Page size"), "{name} {extra}");
            let after = rasters(&out, 50);
            assert_eq!(after.len(), pages.len(), "{name} {extra}: pages");
            for (i, (a, b)) in after.iter().zip(&pages).enumerate() {
                assert!(a == b, "{name} {extra}: page {i} differs from Chromium's");
            }
        }
    }
    chromium.stop().await;
}

/// Every real number outside the streams' data of `pdf`, as written.
fn reals(pdf: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(pdf);
    let mut out = Vec::new();
    for stretch in text.split("endstream") {
        // What comes before a stream's data.
        let objects = stretch.split("stream\n").next().unwrap_or_default();
        for token in objects.split(|c: char| c.is_whitespace() || "[]<>/()".contains(c)) {
            let number = token.strip_prefix('-').unwrap_or(token);
            let digits = number.chars().all(|c| c.is_ascii_digit() || c == '.');
            if number.matches('.').count() == 1 && digits {
                out.push(token.to_owned());
            }
        }
    }
    out
}

/// A batch's documents are written whole (cut from their group's PDF): their numbers are
/// spelled as Chromium spelled them, not as lopdf would (`595.92` for Chromium's
/// `595.91998`), so that they rasterise as the same document alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_document_keeps_chromium_s_numbers() {
    let chromium = Chromium::start().await;
    let original = chromium.print(INVOICE, &options(json!({}))).await;
    let chromium_reals: BTreeSet<String> = reals(&original).into_iter().collect();
    assert!(chromium_reals.contains("595.91998"), "{chromium_reals:?}");
    // Skia writes no leading zero (`.5`); lopdf does (`0.5`).
    assert!(!chromium_reals.iter().any(|r| r.trim_start_matches('-').starts_with("0.")));
    let docs: Vec<_> = (0..2)
        .map(|i| {
            spec(json!({"content": INVOICE.replace("INV-2024-1234", &format!("INV-{i}")),
                "pdfOptions": {"format": "A4", "printBackground": true}}))
        })
        .collect();
    let grouped = chromium.engine.render_group(&docs).await;
    assert_eq!(chromium.engine.stats().grouped, 2, "one group");
    for (i, doc) in grouped.into_iter().enumerate() {
        let pdf = doc.unwrap().pdf;
        check(&pdf, &format!("document {i}"));
        let written: BTreeSet<String> = reals(&pdf).into_iter().collect();
        // The page box as Chromium wrote it, and no number in lopdf's spelling.
        assert!(written.contains("595.91998") && written.contains("841.91998"), "{written:?}");
        let lopdf: Vec<_> = written
            .iter()
            .filter(|r| {
                ["595.92", "841.92"].contains(&r.as_str())
                    || r.trim_start_matches('-').starts_with("0.")
            })
            .collect();
        assert!(lopdf.is_empty(), "document {i}: {lopdf:?} in lopdf's spelling");
    }
    chromium.stop().await;
}

/// A file with cross-reference streams and object streams (qpdf's rewrite of Chromium's), and
/// one whose cross-reference table lies: the update follows the first's form, and the second,
/// which no update could point back at, is written whole. Both stay valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_chromium_does_not_write_are_handled_too() {
    let chromium = Chromium::start().await;
    let original = chromium.print(LINKED, &options(json!({}))).await;
    let dir = tempfile::tempdir().unwrap();
    let (input, streams) = (dir.path().join("in.pdf"), dir.path().join("streams.pdf"));
    std::fs::write(&input, &original).unwrap();
    let status = std::process::Command::new("qpdf")
        .args(["--object-streams=generate"])
        .arg(&input)
        .arg(&streams)
        .status()
        .unwrap();
    assert!(status.success());
    let streams = std::fs::read(&streams).unwrap();
    assert!(streams.windows(10).any(|w| w == b"/Type /XRe" || w == b"/Type/XRef"));
    for extra in [json!({}), json!({"pdfa": "2b", "metadata": {"title": "T"}})] {
        let out = post(&streams, &options(extra.clone())).await;
        assert_eq!(out[8..streams.len()], streams[8..], "{extra}: qpdf's bytes");
        check(&out, &format!("cross-reference streams, {extra}"));
        let tail = String::from_utf8_lossy(&out[streams.len()..]).into_owned();
        assert!(tail.contains("/Type /XRef") && !tail.contains("\nxref\n"), "{tail}");
        assert_eq!(field(&out, "Producer").as_deref(), Some(postprocess::metadata::PRODUCER));
        assert_eq!(rasters(&out, 40), rasters(&streams, 40), "{extra}");
    }
    // startxref 1 byte off: lopdf repairs the table; the file is written whole.
    let keyword = b"startxref\n";
    let at = original.windows(keyword.len()).rposition(|w| w == keyword).unwrap() + keyword.len();
    let offset: usize =
        String::from_utf8_lossy(&original[at..]).lines().next().unwrap().parse().unwrap();
    let mut astray = original[..at].to_vec();
    astray.extend_from_slice(format!("{}\n%%EOF\n", offset + 1).as_bytes());
    let out = post(&astray, &options(json!({"metadata": {"title": "Repaired"}}))).await;
    check(&out, "repaired");
    assert_eq!(field(&out, "Title").as_deref(), Some("Repaired"));
    assert_eq!(rasters(&out, 40), rasters(&original, 40));
    chromium.stop().await;
}
