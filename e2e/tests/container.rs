//! The renderer's container image, built by `scripts/image.sh test` (the runtime stage of
//! docker/Dockerfile with the renderer this run compiled) and run under podman as the renderer
//! of the local stack: `wrangler dev`, s3s-fs and a webhook receiver on the host. Run as
//! docker/README.md recommends: read-only root filesystem, no capability but SYS_CHROOT, no
//! privilege escalation, the image's own user, tini as PID 1; Chromium's sandbox on.
#![allow(clippy::unwrap_used)]

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use tailpdf_e2e::{
    client::{ended, get_job, seed_verifies, submit},
    container::{build_test_image, podman, podman_ok, TEST_IMAGE},
    contract::Contract,
    stack::{wait_until, Settings, Stack, WEBHOOK_SECRET},
};

/// Builds the image once for this file's tests, which run at the same time.
fn image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let log = std::env::temp_dir().join("tailpdf-image-build.log");
        let built = build_test_image(&log);
        eprintln!("container: image ready in {built:.1?} (build log: {})", log.display());
    });
    TEST_IMAGE
}

/// An async job of `content` into the bucket's `key`.
fn job(stack: &Stack, content: &str, key: &str) -> serde_json::Value {
    stack.async_job(content, &stack.bucket.upload_url(key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_serves_the_seeds_async_flow_and_stops_cleanly() {
    let settings = Settings { renderer_image: Some(image().into()), ..Settings::default() };
    let stack = Stack::start(settings).await;
    let contract = Contract::load();
    let name = stack.renderer.container().unwrap();

    // How it runs: tini as PID 1, the image's non-root user, nothing writable but tmpfs.
    assert_eq!(podman_ok(&["exec", &name, "cat", "/proc/1/comm"]), "tini");
    assert_eq!(podman_ok(&["exec", &name, "id", "-u"]), "10001");
    let write = podman().args(["exec", &name, "touch", "/usr/local/bin/x"]).output().unwrap();
    assert!(!write.status.success(), "the root filesystem is writable");
    // The image's HEALTHCHECK, run as the platform runs it.
    let health = podman().args(["healthcheck", "run", &name]).output().unwrap();
    assert!(health.status.success(), "healthcheck: {}", String::from_utf8_lossy(&health.stderr));
    // The log says whether Chromium has its sandbox here.
    let sandbox = stack
        .renderer
        .log()
        .lines()
        .find(|l| l.contains("chromium sandbox"))
        .map(str::to_owned)
        .expect("the renderer logs the sandbox state");
    eprintln!("container: {sandbox}");
    assert!(sandbox.contains("chromium sandbox on"), "without Chromium's sandbox: {sandbox}");

    // The seed's async flow: a presigned PUT into the bucket, a signed webhook.
    let started = Instant::now();
    let id =
        submit(&stack, &contract, &job(&stack, "<h1 class=\"text-3xl\">Boxed</h1>", "boxed.pdf"))
            .await;
    let done = ended(&stack, &contract, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done}\n{}", stack.renderer.log());
    let pdf = stack.bucket.object("boxed.pdf").expect("the PDF is in the bucket");
    assert_eq!(done["result"]["file_size_bytes"], pdf.len());
    wait_until("the webhook", Duration::from_secs(30), async || {
        !stack.receiver.for_job(&id).is_empty()
    })
    .await;
    let hook = &stack.receiver.for_job(&id)[0];
    assert!(seed_verifies(&hook.body, hook.header("x-tailpdf-signature"), WEBHOOK_SECRET));
    eprintln!(
        "container: async job completed and its webhook verified in {:.1?}",
        started.elapsed()
    );

    // `podman stop` during a job: the job finishes within the grace period, the exit is clean.
    let slow = "<script>const t = Date.now(); while (Date.now() - t < 4000) {}</script><p>Slow</p>";
    let id = submit(&stack, &contract, &job(&stack, slow, "slow.pdf")).await;
    wait_until("the job to start", Duration::from_secs(30), async || {
        get_job(&stack, &contract, &id).await.json()["status"] == "processing"
    })
    .await;
    let stopping = Instant::now();
    podman_ok(&["stop", "-t", "40", &name]);
    let stopped_in = stopping.elapsed();
    let exit = podman_ok(&["inspect", &name, "--format", "{{.State.ExitCode}}"]);
    assert_eq!(exit, "0", "exit code; log:\n{}", stack.renderer.log());
    let done = ended(&stack, &contract, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(stack.bucket.object("slow.pdf").is_some());
    eprintln!("container: stopped mid-job in {stopped_in:.1?}, exit 0, the job completed");
}

/// With every capability dropped, user namespaces still work but chroot in them does not, and
/// Chromium's sandbox cannot start. `--sandbox auto` must see that and render without it,
/// saying why; before, its probe passed and Chromium failed to start.
#[test]
fn without_capabilities_auto_renders_without_the_sandbox_and_says_why() {
    let image = image();
    let out = podman()
        .args(["run", "--rm", "-i", "--read-only", "--cap-drop", "ALL"])
        .args(["--security-opt", "no-new-privileges", "--network", "none", image])
        .args(["render", "--input", "-", "--output", "-", "--fonts-api-base", "http://127.0.0.1:9"])
        // Encrypted: the image's qpdf, writing in a read-only container.
        .args(["--options", r#"{"password":{"user":"pw"}}"#])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(b"<p class=\"p-4\">No caps</p>")?;
            child.wait_with_output()
        })
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the render failed: {stderr}");
    assert!(out.stdout.starts_with(b"%PDF-"), "no PDF on stdout");
    let (code, _, _) = tailpdf_e2e::pdf::run_on("pdfinfo", &out.stdout, &[], &[]);
    assert_ne!(code, 0, "the PDF opened without its password");
    let info = tailpdf_e2e::pdf::poppler("pdfinfo", &out.stdout, &["-upw", "pw"]);
    assert!(info.contains("AES-256"), "{info}");
    assert!(stderr.contains("chromium sandbox off"), "{stderr}");
    assert!(stderr.contains("CAP_SYS_CHROOT"), "the warning says what to allow: {stderr}");
}
