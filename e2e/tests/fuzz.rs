//! Schemathesis, a property-based API fuzzer, generates requests from `openapi.yaml` and sends
//! them to the running stack (wrangler dev, the renderer with the css2 stand-in, s3s-fs, a
//! webhook receiver). Whatever it sends, the answer is one the document allows: no 5xx, the
//! documented status codes, content types, headers and bodies; a request the document refuses
//! is refused; unknown methods are 405. Its hooks (e2e/fuzz/hooks.py) keep every generated URL
//! on loopback. The seed is fixed, so a failure can be replayed (`st replay` needs its report).
//!
//! One check is left out: that every request the document allows is accepted. Some rules are
//! beyond what a schema can say, so a request valid by the schema may still be a `400` with
//! its message: a length written with a unit (`"1mm"`) below the smallest page, margins that
//! leave no room, a font family Google does not have.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use tailpdf_e2e::{
    fonts::FontsApi,
    root,
    stack::{Settings, Stack, API_KEY},
};

/// One worker: with two, Python 3.11's `compile()` in both threads at once (Hypothesis
/// describing a strategy) fails now and then with "SystemError: AST constructor recursion depth
/// mismatch", a CPython bug, not ours.
///
/// Test cases per operation.
const EXAMPLES: &str = "100";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_fuzzer_sends_is_answered_as_documented() {
    let schemathesis = root().join(".venv/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: `make setup` installs it",
        schemathesis.display()
    );
    let fonts = FontsApi::start().await;
    let stack =
        Stack::start(Settings { fonts_api_base: Some(fonts.base.clone()), ..Settings::default() })
            .await;
    let report = stack.dir.path().join("fuzz.xml");
    let mut cmd = Command::new(&schemathesis);
    cmd.arg("run")
        .arg(root().join("openapi.yaml"))
        .args(["--url", &stack.edge.url, "--header", &format!("X-API-Key: {API_KEY}")])
        .args(["--checks", "all", "--exclude-checks", "positive_data_acceptance"])
        .args(["--max-examples", EXAMPLES, "--seed", "20261202"])
        .args(["--workers", "1", "--request-timeout", "90", "--no-color"])
        .args(["--generation-database", "none", "--report", "junit", "--report-junit-path"])
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "hooks")
        .env("PYTHONPATH", root().join("e2e/fuzz"))
        .env("TAILPDF_FUZZ_UPLOAD_URL", stack.bucket.upload_url("fuzz/job.pdf"))
        .env("TAILPDF_FUZZ_WEBHOOK_URL", &stack.receiver.url)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(stack.dir.path());
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    eprintln!("fuzz: {:.1?}", started.elapsed());
    assert!(out.status.success(), "the fuzzer found answers the document does not allow");
}
