//! `tailpdf-renderer render`, the one-shot command, as a user runs it.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::FontServer;
use tailpdf_e2e::{
    pdf::{page_info, poppler},
    process::{alive, descendants},
};

const BIN: &str = env!("CARGO_BIN_EXE_tailpdf-renderer");

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("examples").join(name)
}

#[tokio::test]
async fn renders_the_invoice_example_with_inter() {
    let fonts = FontServer::start().await;
    let out = tempfile::tempdir().unwrap();
    let pdf = out.path().join("invoice.pdf");
    // tokio's Command: the font server runs on this test's runtime and must keep answering.
    let status = tokio::process::Command::new(BIN)
        .args(["render", "--font", "Inter:wght@400;500;600;700"])
        .args(["--options", r#"{"format":"A4","printBackground":true}"#])
        .args(["--fonts-api-base", &fonts.base])
        .arg("--font-cache-dir")
        .arg(out.path().join("fonts"))
        .arg("--input")
        .arg(example("invoice.html"))
        .arg("--output")
        .arg(&pdf)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&pdf).unwrap();
    let (pages, w, h) = page_info(&bytes);
    assert_eq!((pages, w.round(), h.round()), (1, 596.0, 842.0));
    let text = poppler("pdftotext", &bytes, &["-layout"]);
    for needle in ["Invoice", "#INV-2024-1234", "Globex Corporation", "Total due", "$16,070.40"] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    let listed = poppler("pdffonts", &bytes, &[]);
    assert!(listed.contains("Inter-SemiBold") && listed.contains("Inter-Regular"), "{listed}");
}

#[test]
fn reads_stdin_and_writes_stdout() {
    let mut child = Command::new(BIN)
        .args(["render", "--input", "-", "--output", "-", "--options", r#"{"format":"A6"}"#])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"<h1 class=\"text-2xl\">From stdin</h1>").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(out.stdout.starts_with(b"%PDF-"));
    assert_eq!(page_info(&out.stdout).1.round(), 298.0);
    assert!(poppler("pdftotext", &out.stdout, &[]).contains("From stdin"));
}

#[test]
fn bad_options_are_refused_with_the_field_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.html");
    std::fs::write(&input, "<p>x</p>").unwrap();
    let out = Command::new(BIN)
        .args(["render", "--output", "/dev/null", "--options", r#"{"format":"B9"}"#])
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`pdfOptions.format` \"B9\" is not a paper format"), "{stderr}");
}

#[test]
fn help_documents_every_setting_with_its_environment_variable() {
    let out = Command::new(BIN).args(["render", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--chromium", "TAILPDF_CHROMIUM"),
        ("--tabs", "TAILPDF_TABS"),
        ("--render-timeout", "TAILPDF_RENDER_TIMEOUT"),
        ("--restart-after", "TAILPDF_RESTART_AFTER"),
        ("--fonts-api-base", "TAILPDF_FONTS_API_BASE"),
        ("--font-cache-dir", "TAILPDF_FONT_CACHE_DIR"),
        ("--font-timeout", "TAILPDF_FONT_TIMEOUT"),
        ("--fetch-timeout", "TAILPDF_FETCH_TIMEOUT"),
        ("--allow-loopback", "TAILPDF_ALLOW_LOOPBACK"),
    ] {
        assert!(help.contains(flag) && help.contains(env), "{flag} / {env} missing:\n{help}");
    }
}

#[test]
fn a_killed_renderer_leaves_no_chromium_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("slow.html");
    std::fs::write(
        &input,
        "<script>const t = Date.now(); while (Date.now() - t < 20000) {}</script>",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["render", "--output", "/dev/null"])
        .arg("--input")
        .arg(&input)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut tree = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        tree = descendants(child.id());
        if tree.len() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(tree.len() >= 4, "chromium did not start: {tree:?}");
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL: the renderer gets no chance to clean up
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tree.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let left: Vec<u32> = tree.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "chromium processes outlived the renderer: {left:?}");
}

/// A proxy in the environment would resolve names itself and hide the real destination from
/// the guard: the page's requests ignore `HTTP(S)_PROXY` and `ALL_PROXY`.
#[tokio::test]
async fn proxies_from_the_environment_are_ignored() {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };
    async fn counting_server() -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        let app = axum::Router::new().fallback(axum::routing::any(move || {
            h.fetch_add(1, Ordering::SeqCst);
            async { ([(axum::http::header::CONTENT_TYPE, "text/css")], "p { color: red }") }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, hits)
    }
    let (proxy, proxy_hits) = counting_server().await;
    let (target, target_hits) = counting_server().await;
    let out = tempfile::tempdir().unwrap();
    let input = out.path().join("doc.html");
    std::fs::write(&input, format!("<link rel=\"stylesheet\" href=\"{target}/s.css\"><p>x</p>"))
        .unwrap();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["render", "--allow-loopback", "--input"]).arg(&input);
    cmd.arg("--output").arg(out.path().join("doc.pdf"));
    for var in ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
    {
        cmd.env(var, &proxy);
    }
    let status = cmd.env_remove("NO_PROXY").env_remove("no_proxy").status().await.unwrap();
    assert!(status.success());
    assert_eq!(target_hits.load(Ordering::SeqCst), 1, "the stylesheet came from its server");
    assert_eq!(proxy_hits.load(Ordering::SeqCst), 0, "the proxy saw a request");
}
