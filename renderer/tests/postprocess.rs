//! The post-processing stage against real Chromium output, judged by independent tools:
//! qpdf and poppler for encryption and metadata, Apache PDFBox Preflight for PDF/A.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::time::Duration;

use common::{engine_config, spec};
use serde_json::json;
use tailpdf_e2e::pdf::{poppler, preflight, run_on};
use tailpdf_renderer::{
    config::EngineConfig,
    engine::{Engine, Rendered},
    error::RenderError,
};

async fn engine_with(f: impl FnOnce(&mut EngineConfig)) -> (Engine, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = engine_config("http://127.0.0.1:9/", cache.path());
    f(&mut cfg);
    (Engine::start(cfg).await.unwrap(), cache)
}

/// Transparency (opacity, a shadow), an image, a link, two headings and system fonts: what
/// an invoice has.
const DOCUMENT: &str = r#"<html lang="en"><head><title>Invoice Zoë #42</title></head>
<body class="p-8"><h1 class="text-2xl font-bold text-blue-700">Invoice</h1>
<p class="shadow-lg opacity-80 rounded bg-gray-100 p-4">Total <b>€ 1,234.50</b>,
<a href="https://example.com/pay" class="underline">pay here</a></p>
<img alt="" style="width:120px" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAYAAABytg0kAAAAFklEQVR4nGP8z8DwnwEJMDEggQQTAMk0AfwBzG9ZAAAAAElFTkSuQmCC">
<h2 class="text-lg">Items</h2><p>One item</p></body></html>"#;

async fn render(engine: &Engine, options: serde_json::Value) -> Rendered {
    engine.render(&spec(json!({"content": DOCUMENT, "pdfOptions": options}))).await.unwrap()
}

fn info(pdf: &[u8], password: Option<&str>) -> String {
    let pw: Vec<&str> = password.map(|p| vec!["-upw", p]).unwrap_or_default();
    poppler("pdfinfo", pdf, &pw)
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim)
}

/// qpdf's account of the encryption, read with `password`.
fn encryption(pdf: &[u8], password: &str) -> String {
    let pw = format!("--password={password}");
    let (code, out, err) = run_on("qpdf", pdf, &["--show-encryption", &pw], &[]);
    assert_eq!(code, 0, "{err}");
    out
}

#[tokio::test]
async fn a_password_encrypts_with_aes_256_and_the_permissions_asked() {
    let (engine, _cache) = engine_with(|_| {}).await;
    let rendered = render(
        &engine,
        json!({"password": {"user": "öffne mich", "owner": "boss -- pw",
               "permissions": {"print": false, "copy": false, "modify": false, "annotate": true}}}),
    )
    .await;
    let pdf = &rendered.pdf;
    assert_eq!(rendered.steps.iter().map(|s| s.name).collect::<Vec<_>>(), ["metadata", "encrypt"]);

    // Without the password nothing opens it; with it, it is whole.
    let (code, _, err) = run_on("pdfinfo", pdf, &[], &[]);
    assert_ne!(code, 0, "opened without a password");
    assert!(err.contains("Incorrect password"), "{err}");
    let (code, _, _) = run_on("pdfinfo", pdf, &["-upw", "wrong"], &[]);
    assert_ne!(code, 0, "opened with a wrong password");
    let opened = info(pdf, Some("öffne mich"));
    assert_eq!(field(&opened, "Pages"), Some("1"));
    assert_eq!(field(&opened, "Title"), Some("Invoice Zoë #42"), "{opened}");
    let (code, out, err) = run_on("qpdf", pdf, &["--check", "--password=öffne mich"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("No syntax or stream encoding errors"), "{out}");
    let text = poppler("pdftotext", pdf, &["-upw", "öffne mich"]);
    assert!(text.contains("1,234.50"), "{text}");

    let user = encryption(pdf, "öffne mich");
    for line in [
        "R = 6",
        "Supplied password is user password",
        "stream encryption method: AESv3",
        "string encryption method: AESv3",
        "print high resolution: not allowed",
        "print low resolution: not allowed",
        "extract for any purpose: not allowed",
        "modify other: not allowed",
        "modify document assembly: not allowed",
        "modify annotations: allowed",
    ] {
        assert!(user.lines().any(|l| l.trim() == line), "{line:?} in:\n{user}");
    }
    // The owner password lifts every restriction.
    let owner = encryption(pdf, "boss -- pw");
    assert!(owner.contains("Supplied password is owner password"), "{owner}");
}

#[tokio::test]
async fn permissions_alone_leave_the_file_open_and_guard_the_rest() {
    let (engine, _cache) = engine_with(|_| {}).await;
    let pdf =
        render(&engine, json!({"password": {"owner": "boss", "permissions": {"print": false}}}))
            .await
            .pdf;
    // Anyone opens it (an empty user password) ...
    let opened = info(&pdf, None);
    assert!(
        opened.contains(
            "Encrypted:       yes (print:no copy:yes change:yes addNotes:yes algorithm:AES-256)"
        ),
        "{opened}"
    );
    // ... and without `owner`, a random owner password guards the same permissions.
    let pdf = render(&engine, json!({"password": {"user": "u", "permissions": {"copy": false}}}))
        .await
        .pdf;
    let user = encryption(&pdf, "u");
    assert!(user.contains("Supplied password is user password"), "{user}");
    assert!(user.contains("extract for any purpose: not allowed"), "{user}");
    assert!(user.contains("print high resolution: allowed"), "{user}");
}

#[tokio::test]
async fn metadata_goes_to_the_info_dictionary_and_xmp_alike() {
    let (engine, _cache) = engine_with(|_| {}).await;
    // Defaults: the document's <title>, tailpdf as creator and producer, tagged, an outline.
    let plain = render(&engine, json!({})).await.pdf;
    let i = info(&plain, None);
    assert_eq!(field(&i, "Title"), Some("Invoice Zoë #42"));
    // Without a <title>, no title (not Chromium's "about:blank").
    let untitled = engine.render(&spec(json!({"content": "<p>x</p>"}))).await.unwrap().pdf;
    assert_eq!(field(&info(&untitled, None), "Title"), None);
    assert_eq!(field(&i, "Creator"), Some("tailpdf"));
    assert_eq!(field(&i, "Producer"), Some(concat!("tailpdf ", env!("CARGO_PKG_VERSION"))));
    assert_eq!(field(&i, "Tagged"), Some("yes"), "{i}");
    assert_eq!(field(&i, "Metadata Stream"), Some("yes"));
    let (_, structure, _) = run_on("qpdf", &plain, &["--json", "--json-key=outlines"], &[]);
    assert!(
        structure.contains("\"title\": \"Invoice\""),
        "no outline entry for the h1:\n{structure}"
    );
    let untagged = render(&engine, json!({"tagged": false, "outline": false})).await.pdf;
    assert_eq!(field(&info(&untagged, None), "Tagged"), Some("no"));

    let given = render(
        &engine,
        json!({"metadata": {"title": "Rechnung <42> & co", "author": "ACME GmbH",
               "subject": "Invoice", "keywords": ["invoice", "2024"], "creator": "Billing",
               "producer": "ACME PDF", "creationDate": "2024-12-15T11:30:00+01:00"}}),
    )
    .await
    .pdf;
    let i = info(&given, None);
    for (name, value) in [
        ("Title", "Rechnung <42> & co"),
        ("Author", "ACME GmbH"),
        ("Subject", "Invoice"),
        ("Keywords", "invoice, 2024"),
        ("Creator", "Billing"),
        ("Producer", "ACME PDF"),
        ("CreationDate", "Sun Dec 15 10:30:00 2024 UTC"),
    ] {
        assert_eq!(field(&i, name), Some(value), "{name} in:\n{i}");
    }
    let xmp = poppler("pdfinfo", &given, &["-meta"]);
    for needle in [
        "<rdf:li xml:lang=\"x-default\">Rechnung &lt;42&gt; &amp; co</rdf:li>",
        "<rdf:li>ACME GmbH</rdf:li>",
        "<pdf:Keywords>invoice, 2024</pdf:Keywords>",
        "<pdf:Producer>ACME PDF</pdf:Producer>",
        "<xmp:CreatorTool>Billing</xmp:CreatorTool>",
        "<xmp:CreateDate>2024-12-15T10:30:00Z</xmp:CreateDate>",
    ] {
        assert!(xmp.contains(needle), "{needle} in:\n{xmp}");
    }
    assert!(!xmp.contains("pdfaid"), "{xmp}");
}

/// Rules of ISO 19005-1 that part 2 dropped, by Preflight's codes, and why each may fail.
const PDFA1_ONLY: [(&str, &str); 7] = [
    ("2.1.6", "ICC profiles up to version 4.x are allowed (19005-2, 6.2.4.2: version < 5)"),
    ("2.2.1", "transparency groups are allowed (19005-2, 6.2.10)"),
    ("2.2.2", "soft masks are allowed (19005-2, 6.2.10)"),
    ("3.1.11", "CIDSet is optional (19005-2, 6.2.11.4.2)"),
    ("4.1.1", "soft masks in graphics states are allowed (19005-2, 6.2.10)"),
    ("4.1.2", "constant alpha (CA, ca) is allowed (19005-2, 6.2.10)"),
    ("7.11.2", "pdfaid:part is 2, not 1"),
];

#[tokio::test]
async fn pdfa_2b_passes_preflight_but_for_the_rules_part_2_dropped() {
    let (engine, _cache) = engine_with(|_| {}).await;
    let rendered = render(&engine, json!({"pdfa": "2b", "metadata": {"author": "ACME"}})).await;
    assert_eq!(rendered.steps.iter().map(|s| s.name).collect::<Vec<_>>(), ["metadata", "pdfa"]);
    let pdf = &rendered.pdf;
    assert!(pdf.starts_with(b"%PDF-1.7\n%"), "{:?}", &pdf[..12]);
    let errors = preflight(pdf);
    let left: Vec<_> =
        errors.iter().filter(|(code, _)| !PDFA1_ONLY.iter().any(|(c, _)| c == code)).collect();
    assert!(left.is_empty(), "PDF/A errors Preflight found:\n{left:#?}");
    // The part-2 identification that Preflight reads as "part must be 1".
    assert!(errors.iter().any(|(c, _)| c == "7.11.2"), "{errors:?}");
    let xmp = poppler("pdfinfo", pdf, &["-meta"]);
    assert!(xmp.contains("<pdfaid:part>2</pdfaid:part>"), "{xmp}");
    assert!(xmp.contains("<pdfaid:conformance>B</pdfaid:conformance>"), "{xmp}");
    // Every font embedded.
    let fonts = poppler("pdffonts", pdf, &[]);
    assert!(fonts.lines().skip(2).all(|l| l.contains(" yes ")), "{fonts}");
    let (code, out, err) = run_on("qpdf", pdf, &["--check"], &[]);
    assert_eq!(code, 0, "{out}{err}");

    // The same validator on Chromium's PDF as the stage found it: what the step fixes.
    let plain = render(&engine, json!({})).await.pdf;
    let before: Vec<String> = preflight(&plain).into_iter().map(|(c, _)| c).collect();
    for fixed in ["1.4.1", "2.4.1"] {
        assert!(before.iter().any(|c| c == fixed), "{fixed} not in {before:?}");
        assert!(!errors.iter().any(|(c, _)| c == fixed), "{fixed} still in {errors:?}");
    }
}

#[tokio::test]
async fn a_failing_step_fails_the_render_with_a_clear_message() {
    let (engine, _cache) = engine_with(|cfg| cfg.qpdf = "/nonexistent/qpdf".into()).await;
    let e = engine
        .render(&spec(
            json!({"content": "<p>x</p>", "pdfOptions": {"password": {"user": "secret-pw"}}}),
        ))
        .await
        .unwrap_err();
    assert!(matches!(&e, RenderError::PostProcess(m) if m.contains("encrypt step failed")), "{e}");
    let message = e.to_api_error().message;
    assert!(message.starts_with("Render failed: the encrypt step failed"), "{message}");
    assert!(!message.contains("secret-pw"), "{message}");
    assert_eq!(engine.stats().postprocess_failures, 1);
    // Renders without a password do not need qpdf.
    assert!(engine.render(&spec(json!({"content": "<p>x</p>"}))).await.is_ok());
}

#[tokio::test]
async fn a_step_that_hangs_is_stopped_at_the_stage_deadline() {
    // A qpdf that never ends, and says where it runs.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let qpdf = dir.path().join("qpdf");
    std::fs::write(&qpdf, format!("#!/bin/sh\necho $$ > {}\nexec sleep 600\n", pid_file.display()))
        .unwrap();
    std::fs::set_permissions(&qpdf, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (engine, _cache) = engine_with(|cfg| {
        cfg.qpdf = qpdf.clone();
        cfg.postprocess_timeout = Duration::from_secs(2);
    })
    .await;
    let started = std::time::Instant::now();
    let e = engine
        .render(&spec(json!({"content": "<p>x</p>", "pdfOptions": {"password": {"user": "pw"}}})))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--postprocess-timeout"), "{e}");
    assert!(!e.retryable());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    // The hanging process went with the step.
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let state = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
    assert!(state.is_err() || state.unwrap().contains(" Z "), "qpdf {pid} still runs");
}
