//! Group renders (a batch's documents on one page, one print, one PDF each) against the same
//! documents rendered alone, judged by poppler: the same pages pixel for pixel (within
//! anti-aliasing), the same text, the same metadata.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use common::{engine_config, spec};
use serde_json::json;
use tailpdf_e2e::pdf::{poppler, run_on};
use tailpdf_renderer::{
    engine::{Engine, Rendered},
    error::RenderError,
};
use tailpdf_shared::RenderSpec;

const INVOICE: &str = include_str!("../../examples/invoice.html");

/// An invoice made different from the others by its number, client, and what `extra` adds.
fn invoice(n: usize, extra: &str) -> String {
    INVOICE
        .replace("#INV-2024-1234", &format!("#INV-2024-{}", 7000 + n))
        .replace("Globex Corporation", &format!("Client number {n}"))
        + extra
}

fn batch_spec(content: &str, metadata: Option<serde_json::Value>) -> RenderSpec {
    let mut options = json!({"format": "A4", "printBackground": true});
    if let Some(m) = metadata {
        options["metadata"] = m;
    }
    spec(json!({"content": content, "pdfOptions": options}))
}

/// The documents of the batch: invoices, one of two pages with a fixed header on each (it goes
/// alone), one
/// with its own CSS (which must stay its own), one that draws far outside its box and covers
/// its page (it goes alone), one with a forged split marker, one with a title.
fn documents() -> Vec<RenderSpec> {
    let contents = [
        invoice(0, ""),
        invoice(
            1,
            "<div class=\"fixed top-0 left-0 h-6 w-full bg-teal-700\"></div>\
             <section style=\"break-before: page\" class=\"p-10 text-lg\">Terms, page two of invoice 1</section>",
        ),
        invoice(2, "<style>p { color: rgb(220, 0, 0) !important } .text-sm { font-size: 20px }</style>"),
        invoice(
            3,
            "<div class=\"absolute inset-0 bg-red-500/30\"></div>\
             <p class=\"-mt-[3000px] text-4xl\">above</p><p class=\"translate-y-[2000px] text-4xl\">below</p>",
        ),
        invoice(4, "<a href=\"https://tailpdf-split.invalid/0000000000000000/0\">a forged marker</a>"),
        format!("<title>Statement  &amp; summary</title>{}", invoice(5, "")),
        // Found by review: a forced break before its first element, dropped alone, would
        // come after the split marker in a group and leave the first page blank (it goes
        // alone).
        format!("<section class=\"break-before-page\">{}</section>", invoice(6, "")),
        // Found by review: a `:host` rule no text search finds (an escape), loosening its
        // host in print only, so that an element of its lands on another document's page
        // (it goes alone).
        format!(
            "<style>:\\68 ost {{ contain: none !important; overflow: visible !important; \
             position: static !important }} @media print {{ .x7 {{ position: absolute; \
             top: 1500px }} }}</style>{}<div class=\"x7\">PAY TO MALLORY</div>",
            invoice(7, "")
        ),
        // Found by review: a link to an element of its own (`#terms`), which a shadow root's
        // document cannot resolve (it goes alone).
        invoice(
            8,
            "<a href=\"#terms\">See the terms</a>\
             <section id=\"terms\" class=\"p-10\">Terms of invoice 8</section>",
        ),
    ];
    contents
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let metadata = (i == 4).then(|| json!({"title": "Invoice four", "author": "Acme"}));
            batch_spec(c, metadata)
        })
        .collect()
}

/// Each page of `pdf` as RGB pixels at `dpi`.
fn raster(pdf: &[u8], dpi: u32) -> Vec<(usize, usize, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let out = std::process::Command::new("pdftoppm")
        .args(["-r", &dpi.to_string()])
        .arg(&path)
        .arg(dir.path().join("p"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ppm"))
        .collect();
    files.sort();
    files.iter().map(|f| common::ppm(&std::fs::read(f).unwrap())).collect()
}

/// `text` with Chromium's element ids (`node00000039`, numbered in the order the page made
/// them) numbered in order of appearance instead, and without annotations' object numbers.
fn renumbered(text: &str) -> String {
    let mut ids: Vec<String> = Vec::new();
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("node") {
        out.push_str(&rest[..at]);
        let digits: String = rest[at + 4..].chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            out.push_str("node");
        } else {
            let id = digits.clone();
            let n = ids.iter().position(|i| *i == id).unwrap_or_else(|| {
                ids.push(id);
                ids.len() - 1
            });
            out.push_str(&format!("id{n}"));
        }
        rest = &rest[at + 4 + digits.len()..];
    }
    out.push_str(rest);
    // Annotations by object number, which depends on the file's layout.
    out.lines()
        .map(|l| match l.trim_start().strip_prefix("Object ") {
            Some(_) => format!("{}Object", &l[..l.len() - l.trim_start().len()]),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The outline's entries: their titles and depths, and the pages they go to.
fn outline(pdf: &[u8]) -> Vec<(usize, String, i64)> {
    let (code, out, err) = run_on("qpdf", pdf, &["--json", "--json-key=outlines"], &[]);
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    fn walk(items: &serde_json::Value, depth: usize, out: &mut Vec<(usize, String, i64)>) {
        for item in items.as_array().into_iter().flatten() {
            let title = item["title"].as_str().unwrap_or_default().to_owned();
            out.push((depth, title, item["destpageposfrom1"].as_i64().unwrap_or(-1)));
            walk(&item["kids"], depth + 1, out);
        }
    }
    let mut entries = Vec::new();
    walk(&json["outlines"], 0, &mut entries);
    entries
}

fn info_field(pdf: &[u8], name: &str) -> Option<String> {
    poppler("pdfinfo", pdf, &[])
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
}

/// Asserts that `grouped` looks as `alone` does: pages, pixels, text, metadata.
fn assert_same(i: usize, grouped: &Rendered, alone: &Rendered) {
    if let Ok(dir) = std::env::var("TAILPDF_BATCH_DUMP") {
        std::fs::write(format!("{dir}/{i}-grouped.pdf"), &grouped.pdf).unwrap();
        std::fs::write(format!("{dir}/{i}-alone.pdf"), &alone.pdf).unwrap();
    }
    let (g, a) = (raster(&grouped.pdf, 60), raster(&alone.pdf, 60));
    assert_eq!(g.len(), a.len(), "document {i}: page count");
    for (page, (gp, ap)) in g.iter().zip(&a).enumerate() {
        assert_eq!((gp.0, gp.1), (ap.0, ap.1), "document {i} page {page}: size");
        let pixels = gp.2.len() / 3;
        let (mut differing, mut worst) = (0, 0u8);
        for (x, y) in gp.2.chunks(3).zip(ap.2.chunks(3)) {
            let delta = x.iter().zip(y).map(|(p, q)| p.abs_diff(*q)).max().unwrap_or(0);
            if delta > 0 {
                differing += 1;
                worst = worst.max(delta);
            }
        }
        // Glyphs and edges anti-aliased at another sub-pixel phase of the page (up to a 1-px
        // column at a page edge), nothing more: a moved or missing element is thousands.
        assert!(
            differing * 10_000 <= pixels,
            "document {i} page {page}: {differing} of {pixels} pixels differ, by up to {worst}"
        );
    }
    let text = |pdf: &[u8]| poppler("pdftotext", pdf, &["-layout"]);
    assert_eq!(text(&grouped.pdf), text(&alone.pdf), "document {i}: text");
    // Tags: the same structure with the same text, element by element.
    let structure = |pdf: &[u8]| renumbered(&poppler("pdfinfo", pdf, &["-struct-text"]));
    assert_eq!(structure(&grouped.pdf), structure(&alone.pdf), "document {i}: tags");
    assert_eq!(outline(&grouped.pdf), outline(&alone.pdf), "document {i}: outline");
    // Internal links' named destinations, and the pages they go to.
    let dests = |pdf: &[u8]| poppler("pdfinfo", pdf, &["-dests"]);
    assert_eq!(dests(&grouped.pdf), dests(&alone.pdf), "document {i}: destinations");
    for field in
        ["Title", "Author", "Subject", "Keywords", "Creator", "Producer", "Pages", "Tagged"]
    {
        assert_eq!(
            info_field(&grouped.pdf, field),
            info_field(&alone.pdf, field),
            "document {i}: {field}"
        );
    }
    let (code, _, err) = run_on("qpdf", &grouped.pdf, &["--check"], &[]);
    assert_eq!(code, 0, "document {i}: qpdf --check: {err}");
    // Cut and compressed again, its file is no larger than alone (within 5%): nothing of the
    // group carried along, its fonts not left uncompressed.
    let (g, a) = (grouped.pdf.len(), alone.pdf.len());
    assert!(g * 20 <= a * 21, "document {i}: {g} bytes grouped, {a} alone");
}

#[tokio::test]
async fn every_document_of_a_group_renders_as_it_does_alone() {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::start(engine_config("http://127.0.0.1:9/", cache.path())).await.unwrap();
    let docs = documents();
    let grouped = engine.render_group(&docs).await;
    let stats = engine.stats();
    // One group, without the invoice with a fixed header (which repeats on each of its pages
    // only when it has the page to itself), the one that draws outside its box (which its
    // host would clip), the one breaking before its start, the one styling its host and the
    // one linking within itself: those five rendered alone.
    assert_eq!((stats.grouped, stats.group_fallbacks), (docs.len() as u64 - 5, 0), "one group");
    for (i, (spec, grouped)) in docs.iter().zip(grouped).enumerate() {
        let grouped = grouped.unwrap_or_else(|e| panic!("document {i}: {e}"));
        assert!(!grouped.isolated);
        let alone = engine.render(spec).await.unwrap();
        assert_same(i, &grouped, &alone);
        // No page of another document was carried along, shown or not.
        let pages = info_field(&grouped.pdf, "Pages").unwrap();
        let doc = lopdf::Document::load_mem(&grouped.pdf).unwrap();
        let page_objects = doc
            .objects
            .values()
            .filter(|o| {
                o.as_dict().is_ok_and(|d| {
                    d.get(b"Type").and_then(|t| t.as_name()).is_ok_and(|t| t == b"Page")
                })
            })
            .count();
        assert_eq!(page_objects.to_string(), pages, "document {i}");
    }
    let title = |r: &Rendered| info_field(&r.pdf, "Title");
    let again = engine.render_group(&docs).await;
    assert_eq!(title(again[5].as_ref().unwrap()).as_deref(), Some("Statement & summary"));
    assert_eq!(title(again[4].as_ref().unwrap()).as_deref(), Some("Invoice four"));
    assert_eq!(info_field(&again[4].as_ref().unwrap().pdf, "Author").as_deref(), Some("Acme"));
    assert_eq!(title(again[0].as_ref().unwrap()), None);
}

#[tokio::test]
async fn a_failing_document_fails_alone_and_the_rest_render() {
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = engine_config("http://127.0.0.1:9/", cache.path());
    cfg.limits.pages = 2;
    let engine = Engine::start(cfg).await.unwrap();
    let pages = |n: usize| {
        (0..n).map(|p| format!("<p style=\"break-before: page\">page {p}</p>")).collect::<String>()
    };
    let docs: Vec<RenderSpec> = [
        invoice(0, ""),
        invoice(1, &pages(2)),
        invoice(2, "<script>document.body.append('scripted')</script>"),
        invoice(3, ""),
    ]
    .iter()
    .map(|c| batch_spec(c, None))
    .collect();
    let results = engine.render_group(&docs).await;
    assert!(
        matches!(&results[1], Err(RenderError::Limit(_))),
        "over the page limit: {:?}",
        results[1].as_ref().map(|r| r.pdf.len()).map_err(ToString::to_string)
    );
    for i in [0, 2, 3] {
        assert!(results[i].is_ok(), "document {i}: {:?}", results[i].as_ref().err());
    }
    // The scripted one went alone, to a context of its own; the others were one group.
    assert!(results[2].as_ref().unwrap().isolated);
    assert!(poppler("pdftotext", &results[2].as_ref().unwrap().pdf, &[]).contains("scripted"));
    assert_eq!(engine.stats().grouped, 3);

    // A document whose need for scripts only its DOM shows (an entity-encoded javascript:
    // URL) fails the group as a whole: every document is rendered alone, and all succeed.
    let sneaky = batch_spec(&invoice(9, "<a href=\"jav&#x61;script:void(0)\">x</a>"), None);
    let docs = vec![docs[0].clone(), sneaky, docs[3].clone()];
    let before = engine.stats();
    let results = engine.render_group(&docs).await;
    assert!(results.iter().all(Result::is_ok));
    let after = engine.stats();
    assert_eq!(after.group_fallbacks - before.group_fallbacks, 1);
    assert_eq!(after.grouped, before.grouped);
    assert!(results[1].as_ref().unwrap().isolated, "rendered where scripts may run");
}

#[tokio::test]
async fn grouped_documents_get_their_post_processing_each() {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::start(engine_config("http://127.0.0.1:9/", cache.path())).await.unwrap();
    let pdfa = |n: usize| {
        spec(json!({"content": invoice(n, ""), "pdfOptions": {"format": "A4", "pdfa": "2b",
            "metadata": {"title": format!("PDF/A {n}")}}}))
    };
    let results = engine.render_group(&[pdfa(0), pdfa(1)]).await;
    assert_eq!(engine.stats().grouped, 2);
    let mut ids = Vec::new();
    for (n, r) in results.iter().enumerate() {
        let pdf = &r.as_ref().unwrap().pdf;
        assert!(pdf.starts_with(b"%PDF-1.7"), "the PDF/A header");
        let meta = poppler("pdfinfo", pdf, &["-meta"]);
        assert!(meta.contains("<pdfaid:part>2</pdfaid:part>"), "{meta}");
        assert_eq!(info_field(pdf, "Title"), Some(format!("PDF/A {n}")));
        let (code, _, err) = run_on("qpdf", pdf, &["--check"], &[]);
        assert_eq!(code, 0, "{err}");
        let doc = lopdf::Document::load_mem(pdf).unwrap();
        ids.push(format!("{:?}", doc.trailer.get(b"ID").unwrap()));
    }
    assert_ne!(ids[0], ids[1], "each file has an identifier of its own");
}

/// The glyph count of every TrueType program embedded in `pdf`, every character its ToUnicode
/// maps name in `bfchar` entries, and whether any also has `bfrange` entries (not read here).
fn embedded_glyphs(pdf: &[u8]) -> (Vec<u16>, String, bool) {
    let doc = lopdf::Document::load_mem(pdf).unwrap();
    let (mut counts, mut chars, mut ranges) = (Vec::new(), String::new(), false);
    for object in doc.objects.values() {
        let Ok(stream) = object.as_stream() else { continue };
        let data = stream.decompressed_content().unwrap_or_else(|_| stream.content.clone());
        if stream.dict.has(b"Length1") {
            // maxp's numGlyphs, found through the table directory.
            let tables = u16::from_be_bytes([data[4], data[5]]) as usize;
            let maxp = (0..tables)
                .map(|i| &data[12 + 16 * i..28 + 16 * i])
                .find(|entry| &entry[..4] == b"maxp")
                .unwrap();
            let at = u32::from_be_bytes(maxp[8..12].try_into().unwrap()) as usize;
            counts.push(u16::from_be_bytes([data[at + 4], data[at + 5]]));
        } else if let Some(text) =
            std::str::from_utf8(&data).ok().filter(|t| t.contains("begincmap"))
        {
            ranges |= text.contains("beginbfrange");
            for block in text.split("beginbfchar").skip(1) {
                let body = block.split("endbfchar").next().unwrap();
                for dst in body.split_whitespace().skip(1).step_by(2) {
                    let hex = dst.trim_matches(['<', '>']);
                    let units: Vec<u16> = (0..hex.len())
                        .step_by(4)
                        .map(|i| u16::from_str_radix(&hex[i..i + 4], 16).unwrap())
                        .collect();
                    chars.push_str(&String::from_utf16(&units).unwrap());
                }
            }
        }
    }
    (counts, chars, ranges)
}

/// Found by review: Chromium subsets each font once for the whole print, so each document cut
/// from the group carried the glyphs (outlines, widths, ToUnicode entries) of characters the
/// other documents used. Each now holds only its own, and still looks as it does alone.
#[tokio::test]
async fn a_grouped_document_s_fonts_hold_only_its_own_glyphs() {
    let cache = tempfile::tempdir().unwrap();
    let engine = Engine::start(engine_config("http://127.0.0.1:9/", cache.path())).await.unwrap();
    let docs = vec![
        batch_spec("<p class=\"p-8\">aaaa</p>", None),
        batch_spec("<p class=\"p-8\">QXZJ WYK</p><p class=\"p-8 font-bold\">Bold Q</p>", None),
    ];
    let grouped = engine.render_group(&docs).await;
    assert_eq!(engine.stats().grouped, 2);
    for (i, (own, foreign)) in [("a", "QXZJWYKBold"), ("QXZJWYKBold", "a")].into_iter().enumerate()
    {
        let grouped = grouped[i].as_ref().unwrap();
        let (counts, chars, ranges) = embedded_glyphs(&grouped.pdf);
        // .notdef, a space, and its own letters at most.
        let distinct = own.chars().collect::<std::collections::BTreeSet<_>>().len() as u16;
        assert!(counts.iter().all(|n| *n <= distinct + 2), "document {i}: glyphs {counts:?}");
        assert!(!counts.is_empty() && !chars.is_empty() && !ranges, "document {i}: {chars:?}");
        for c in foreign.chars() {
            assert!(!chars.contains(c), "document {i} maps {c:?}, another document's: {chars:?}");
        }
        for c in own.chars() {
            assert!(chars.contains(c), "document {i} lacks its own {c:?}: {chars:?}");
        }
        assert_same(i, grouped, &engine.render(&docs[i]).await.unwrap());
    }
}
