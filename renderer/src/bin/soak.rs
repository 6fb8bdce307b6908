//! `tailpdf-soak`: the renderer service as an operator runs it (`tailpdf-renderer serve`, a child
//! process), measured from outside through its signed HTTP API.
//!
//!   make bench-memory       (cold starts, then 10,000 mixed renders)
//!   make bench-cold-start   (cold starts only)
//!
//! - cold start: the time from spawning `serve` to `/readyz` answering 200 (polled every
//!   10 ms), then the first render, the second and a steady one (the 10th) of the invoice;
//!   repeated, medians reported. The steady render is the baseline the first is read against.
//! - memory: renders of four documents in turn (the invoice, a 20-page report, a letter in a
//!   web font served by a local css2 stand-in, the invoice with a script), a few in flight at
//!   once; every `--sample-every` renders the senders pause and the service is sampled at
//!   rest (the least of a few readings): PSS of the renderer and of all its descendants
//!   (Chromium) from /proc/PID/smaps_rollup, open file descriptors, processes, and the files
//!   in its temp and font cache directories; then the same PSS once every page of Chromium
//!   has collected its garbage (through its DevTools port). Flatness is reported over all
//!   samples, and over samples of Chromiums of the same age (`--restart-after` makes a
//!   saw-tooth).
//!
//! Prints a Markdown report (figures for BENCHMARKS.md); `--csv` and `--svg` keep the samples.
//! Nothing leaves loopback: the fonts come from a local server.

use std::{
    fmt::Write as _,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{http::header, routing::get, Router};
use clap::Parser;
use futures::StreamExt;
use tailpdf_renderer::measure::pss_kib;
use tailpdf_shared::{
    signing::{sign_internal, INTERNAL_SIGNATURE_HEADER},
    UrlPolicy,
};

const SECRET: &str = "soak-internal-secret";

#[derive(Parser)]
#[command(about = "Cold start and memory over many renders of `tailpdf-renderer serve`")]
struct Args {
    /// Renders of the memory run (0: cold starts only).
    #[arg(long, default_value_t = 10_000)]
    renders: usize,
    /// Renders between two samples.
    #[arg(long, default_value_t = 500)]
    sample_every: usize,
    /// Renders before samples count towards the flatness figure.
    #[arg(long, default_value_t = 1000)]
    warmup: usize,
    /// Cold starts measured (0: none).
    #[arg(long, default_value_t = 5)]
    cold_starts: usize,
    /// Renders in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// The service's tabs.
    #[arg(long, default_value_t = 2)]
    tabs: usize,
    /// The service's `--restart-after`.
    #[arg(long, default_value_t = 1000)]
    restart_after: u64,
    /// The `tailpdf-renderer` binary (default: the one next to this binary).
    #[arg(long)]
    renderer: Option<PathBuf>,
    #[arg(long, default_value = "/usr/lib/chromium/chromium-headless-shell")]
    chromium: PathBuf,
    /// The invoice.
    #[arg(long, default_value = "examples/invoice.html")]
    input: PathBuf,
    /// The font file the local css2 stand-in serves.
    #[arg(long, default_value = "/usr/share/fonts/truetype/inter-vf/Inter-roman.var.ttf")]
    font: PathBuf,
    /// Writes the samples as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Writes a plot of PSS over renders as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
}

/// One document of the mix: its name and the signed `/render` body.
struct Doc {
    name: &'static str,
    body: Vec<u8>,
}

fn render_body(request: serde_json::Value) -> anyhow::Result<Vec<u8>> {
    let body = serde_json::to_vec(&request)?;
    let valid = tailpdf_shared::parse_pdf_request(&body, UrlPolicy::PRODUCTION)
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    Ok(serde_json::to_vec(&valid.spec)?)
}

/// A report of 20 A4 pages: a section per page, a table of 30 rows in each.
fn report() -> String {
    let mut html = String::from("<main class=\"p-8 text-gray-900\">");
    for page in 1..=20 {
        let _ = write!(
            html,
            "<section class=\"break-after-page\"><h2 class=\"text-xl font-semibold text-teal-800\">\
             Section {page}: quarterly figures</h2><p class=\"mt-2 text-sm text-gray-600\">\
             Figures for region {page}, all amounts in thousands.</p>\
             <table class=\"mt-4 w-full text-left text-sm\"><thead><tr class=\"border-b \
             border-gray-300\"><th class=\"py-1\">Item</th><th class=\"py-1 text-right\">Q1</th>\
             <th class=\"py-1 text-right\">Q2</th><th class=\"py-1 text-right\">Q3</th>\
             <th class=\"py-1 text-right\">Q4</th></tr></thead><tbody>"
        );
        for row in 1..=30 {
            let n = page * 100 + row;
            let _ = write!(
                html,
                "<tr class=\"odd:bg-gray-50\"><td class=\"py-1\">Line {row}</td>\
                 <td class=\"py-1 text-right tabular-nums\">{}</td>\
                 <td class=\"py-1 text-right tabular-nums\">{}</td>\
                 <td class=\"py-1 text-right tabular-nums\">{}</td>\
                 <td class=\"py-1 text-right font-medium tabular-nums\">{}</td></tr>",
                n * 3 % 997,
                n * 7 % 991,
                n * 11 % 983,
                n * 13 % 977
            );
        }
        html.push_str("</tbody></table></section>");
    }
    html.push_str("</main>");
    html
}

fn documents(invoice: &str) -> anyhow::Result<Vec<Doc>> {
    let options = serde_json::json!({"format": "A4", "printBackground": true});
    let letter = "<article class=\"mx-auto max-w-2xl p-12 text-gray-900\">\
        <h1 class=\"text-3xl font-bold tracking-tight\">A letter in Inter</h1>\
        <p class=\"mt-6 text-base/7\">Dear customer, this page is set in a web font the renderer \
        fetched once from the fonts API and serves from its cache ever since.</p>\
        <p class=\"mt-4 text-base/7 font-bold\">With kind regards, the tailpdf team</p></article>";
    let script = "<ul id=\"extra\" class=\"mt-6 space-y-1 px-10 text-sm\"></ul><script>\
        const ul = document.getElementById('extra');\
        for (let i = 1; i <= 20; i++) { const li = document.createElement('li');\
        li.className = 'rounded bg-teal-50 px-2 py-1 text-teal-900';\
        li.textContent = 'Line added by a script: ' + i; ul.appendChild(li); }</script>";
    Ok(vec![
        Doc {
            name: "invoice",
            body: render_body(serde_json::json!({"content": invoice, "pdfOptions": options}))?,
        },
        Doc {
            name: "20-page report",
            body: render_body(serde_json::json!({"content": report(), "pdfOptions": options}))?,
        },
        Doc {
            name: "web font",
            body: render_body(serde_json::json!({
                "content": letter,
                "fonts": ["Inter:wght@400;700"],
                "pdfOptions": options,
            }))?,
        },
        Doc {
            name: "script",
            body: render_body(
                serde_json::json!({"content": format!("{invoice}{script}"), "pdfOptions": options}),
            )?,
        },
    ])
}

/// A stand-in of the Google Fonts css2 API on loopback, serving one font file.
async fn font_server(font: &Path) -> anyhow::Result<String> {
    let bytes = bytes::Bytes::from(
        std::fs::read(font)
            .with_context(|| format!("{} (fonts-inter-variable)", font.display()))?,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let css: Arc<str> = [400, 700]
        .iter()
        .map(|weight| {
            format!(
                "@font-face {{ font-family: 'Inter'; font-style: normal; font-weight: {weight}; \
                 src: url({base}/inter.ttf) format('truetype'); }}\n"
            )
        })
        .collect::<String>()
        .into();
    let app = Router::new()
        .route(
            "/css2",
            get(move || {
                let css = css.clone();
                async move { ([(header::CONTENT_TYPE, "text/css")], css.to_string()) }
            }),
        )
        .route(
            "/inter.ttf",
            get(move || {
                let bytes = bytes.clone();
                async move { ([(header::CONTENT_TYPE, "font/ttf")], bytes) }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(base)
}

/// A running `tailpdf-renderer serve` and the directories it writes to.
struct Service {
    child: Child,
    base: String,
    tmp: PathBuf,
    fonts: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    fn spawn(args: &Args, renderer: &Path, fonts_api: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // Chromium runs as an unprivileged user when this runs as root: its home (made in the
        // renderer's TMPDIR) must be reachable.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let tmp = dir.path().join("tmp");
        let fonts = dir.path().join("fonts");
        std::fs::create_dir_all(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = std::fs::File::create(dir.path().join("renderer.log"))?;
        let child = Command::new(renderer)
            .arg("serve")
            .env("TAILPDF_LISTEN", format!("127.0.0.1:{port}"))
            .env("TAILPDF_INTERNAL_SECRET", SECRET)
            .env("TAILPDF_EDGE_URL", "http://127.0.0.1:9")
            .env("TAILPDF_TABS", args.tabs.to_string())
            .env("TAILPDF_RESTART_AFTER", args.restart_after.to_string())
            .env("TAILPDF_CHROMIUM", &args.chromium)
            .env("TAILPDF_FONTS_API_BASE", fonts_api)
            .env("TAILPDF_FONT_CACHE_DIR", &fonts)
            .env("TMPDIR", &tmp)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("{} (build it with --release)", renderer.display()))?;
        Ok(Self { child, base: format!("http://127.0.0.1:{port}"), tmp, fonts, _dir: dir })
    }

    /// Polls `/readyz` every 10 ms until it answers 200.
    async fn wait_ready(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let ready = client
                .get(format!("{}/readyz", self.base))
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("the renderer exited before it was ready: {status}");
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "not ready in 60 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn render(&self, client: &reqwest::Client, body: &[u8]) -> anyhow::Result<usize> {
        let path = "/render";
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
        let signature = sign_internal(SECRET, now as i64, "POST", path, body);
        let response = client
            .post(format!("{}{path}", self.base))
            .header(INTERNAL_SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        anyhow::ensure!(
            status == 200 && bytes.starts_with(b"%PDF"),
            "render answered {status}: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
        Ok(bytes.len())
    }

    async fn metric(&self, client: &reqwest::Client, name: &str) -> Option<f64> {
        let text =
            client.get(format!("{}/metrics", self.base)).send().await.ok()?.text().await.ok()?;
        text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    }

    /// SIGTERM, then waits for the exit.
    fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        Ok(self.child.wait()?)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn process(pid: u32) -> Option<procfs::process::Process> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()
}

fn fd_count(pid: u32) -> usize {
    process(pid).and_then(|p| p.fd_count().ok()).unwrap_or(0)
}

/// Files (not directories) and their bytes under `dir`.
fn files_under(dir: &Path) -> (usize, u64) {
    let mut found = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                found.0 += 1;
                found.1 += meta.len();
            }
        }
    }
    found
}

struct Sample {
    renders: usize,
    renderer_pss: u64,
    chromium_pss: u64,
    processes: usize,
    renderer_fds: usize,
    chromium_fds: usize,
    tmp_files: usize,
    tmp_bytes: u64,
    font_files: usize,
    browser_starts: f64,
    pdf_per_s: Option<f64>,
    /// Total PSS once every page collected its garbage (the least of [`READINGS`] readings),
    /// and the pages that did: memory held, apart from memory merely not collected yet.
    collected: Option<(u64, usize)>,
}

impl Sample {
    fn total(&self) -> u64 {
        self.renderer_pss + self.chromium_pss
    }
}

/// Readings per sample; the sample is the one of least total PSS.
const READINGS: usize = 3;

/// One sample of the service at rest: once its tabs are free and its spare contexts made (or
/// 5 s passed), the least of [`READINGS`] readings 300 ms apart, so that a page process still
/// being torn down or a garbage collection under way does not pass for growth.
async fn sample(
    service: &Service,
    client: &reqwest::Client,
    tabs: usize,
    renders: usize,
    pdf_per_s: Option<f64>,
) -> Sample {
    let settle = Instant::now();
    loop {
        let idle = service.metric(client, "tailpdf_tabs_idle").await;
        let spares = service.metric(client, "tailpdf_spare_contexts").await;
        let at_rest = [idle, spares].iter().all(|n| *n == Some(tabs as f64));
        if at_rest || settle.elapsed() > Duration::from_secs(5) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut least = least_of_readings(service, client, renders, pdf_per_s).await;
    least.collected = match collect_garbage(&service.tmp).await {
        Ok(pages) => {
            // Freed pages go back to the system a moment after the collection.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let collected = least_of_readings(service, client, renders, pdf_per_s).await;
            Some((collected.total(), pages))
        }
        Err(e) => {
            eprintln!("no garbage collection at {renders} renders: {e:#}");
            None
        }
    };
    least
}

async fn least_of_readings(
    service: &Service,
    client: &reqwest::Client,
    renders: usize,
    pdf_per_s: Option<f64>,
) -> Sample {
    let mut least: Option<Sample> = None;
    for i in 0..READINGS {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let reading = read(service, client, renders, pdf_per_s).await;
        if least.as_ref().is_none_or(|l| reading.total() < l.total()) {
            least = Some(reading);
        }
    }
    least.unwrap_or_else(|| unreachable!("READINGS > 0"))
}

/// Has every page of the service's Chromium collect its garbage (CDP
/// `HeapProfiler.collectGarbage`), through the DevTools port Chromium opened on loopback for
/// the service. The service is not changed for this: the benchmark talks to its Chromium as a
/// second DevTools client, and detaches. Returns how many pages collected.
async fn collect_garbage(tmp: &Path) -> anyhow::Result<usize> {
    let mut cdp = Cdp::connect(&devtools_url(tmp)?).await?;
    let targets = cdp.call("Target.getTargets", None, serde_json::json!({})).await?;
    let pages: Vec<String> = targets["targetInfos"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["type"] == "page")
        .filter_map(|t| t["targetId"].as_str().map(String::from))
        .collect();
    let mut collected = 0;
    for target in pages {
        // A page may close between the listing and the attach: count only those collected.
        let attach = serde_json::json!({ "targetId": target, "flatten": true });
        let Ok(attached) = cdp.call("Target.attachToTarget", None, attach).await else {
            continue;
        };
        let Some(session) = attached["sessionId"].as_str().map(String::from) else { continue };
        if cdp
            .call("HeapProfiler.collectGarbage", Some(&session), serde_json::json!({}))
            .await
            .is_ok()
        {
            collected += 1;
        }
        let detach = serde_json::json!({ "sessionId": session });
        let _ = cdp.call("Target.detachFromTarget", None, detach).await;
    }
    Ok(collected)
}

/// The DevTools URL of the service's current Chromium, from the `DevToolsActivePort` file in
/// its profile (`<TMPDIR>/tailpdf-chromium-*/profile`); the newest, should an old one linger.
fn devtools_url(tmp: &Path) -> anyhow::Result<String> {
    let newest = std::fs::read_dir(tmp)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tailpdf-chromium-"))
        .map(|e| e.path().join("profile/DevToolsActivePort"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max()
        .context("no DevToolsActivePort in the renderer's TMPDIR")?;
    let text = std::fs::read_to_string(&newest.1)?;
    let mut lines = text.lines();
    let (Some(port), Some(path)) = (lines.next(), lines.next()) else {
        anyhow::bail!("{} is not a port and a path", newest.1.display());
    };
    Ok(format!("ws://127.0.0.1:{port}{path}"))
}

/// A bare DevTools connection: one command at a time, events ignored.
struct Cdp(chromiumoxide::Connection<chromiumoxide::types::CdpJsonEventMessage>);

impl Cdp {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        let connecting = chromiumoxide::Connection::connect(url);
        Ok(Self(tokio::time::timeout(Duration::from_secs(5), connecting).await??))
    }

    async fn call(
        &mut self,
        method: &'static str,
        session: Option<&str>,
        params: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let session = session.map(|s| s.to_owned().into());
        let id = self.0.submit_command(method.into(), session, params)?;
        let answer = async {
            while let Some(message) = self.0.next().await {
                if let chromiumoxide::types::Message::Response(r) = message? {
                    if r.id == id {
                        if let Some(e) = r.error {
                            anyhow::bail!("{method}: {} {}", e.code, e.message);
                        }
                        return Ok(r.result.unwrap_or_default());
                    }
                }
            }
            anyhow::bail!("{method}: the DevTools connection closed")
        };
        tokio::time::timeout(Duration::from_secs(10), answer).await?
    }
}

async fn read(
    service: &Service,
    client: &reqwest::Client,
    renders: usize,
    pdf_per_s: Option<f64>,
) -> Sample {
    let pid = service.child.id();
    let tree = tailpdf_renderer::measure::process_tree(pid);
    let (tmp_files, tmp_bytes) = files_under(&service.tmp);
    Sample {
        renders,
        renderer_pss: pss_kib(pid),
        chromium_pss: tree[1..].iter().map(|p| pss_kib(*p)).sum(),
        processes: tree.len(),
        renderer_fds: fd_count(pid),
        chromium_fds: tree[1..].iter().map(|p| fd_count(*p)).sum(),
        tmp_files,
        tmp_bytes,
        font_files: files_under(&service.fonts).0,
        browser_starts: service
            .metric(client, "tailpdf_browser_restarts_total")
            .await
            .unwrap_or(-1.0),
        pdf_per_s,
        collected: None,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn cold_starts(
    args: &Args,
    renderer: &Path,
    fonts_api: &str,
    client: &reqwest::Client,
    invoice: &[u8],
) -> anyhow::Result<()> {
    let mut ready = Vec::new();
    let mut first = Vec::new();
    let mut second = Vec::new();
    let mut steady = Vec::new();
    for round in 1..=args.cold_starts {
        let started = Instant::now();
        let mut service = Service::spawn(args, renderer, fonts_api)?;
        service.wait_ready(client).await?;
        ready.push(millis(started.elapsed()));
        let mut times = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            service.render(client, invoice).await?;
            times.push(millis(t.elapsed()));
        }
        first.push(times[0]);
        second.push(times[1]);
        steady.push(times[9]);
        eprintln!(
            "cold start {round}/{}: ready {:.0} ms, renders {:.0} / {:.0} / {:.0} ms (1st, 2nd, 10th)",
            args.cold_starts, ready[round - 1], times[0], times[1], times[9]
        );
        service.stop()?;
    }
    let (ready, first, second, steady) =
        (median(ready), median(first), median(second), median(steady));
    println!("### Cold start: {} starts of `tailpdf-renderer serve`, medians", args.cold_starts);
    println!();
    println!("| what | time | × a steady render |");
    println!("|---|---|---|");
    println!(
        "| spawn → `/readyz` 200 (polled every 10 ms) | {ready:.0} ms | {:.1}× |",
        ready / steady
    );
    println!("| first render of the invoice | {first:.1} ms | {:.2}× |", first / steady);
    println!("| second render | {second:.1} ms | {:.2}× |", second / steady);
    println!("| steady render (the 10th), the baseline | {steady:.1} ms | 1.00× |");
    println!();
    Ok(())
}

async fn memory(
    args: &Args,
    renderer: &Path,
    fonts_api: &str,
    client: &reqwest::Client,
    docs: &[Doc],
) -> anyhow::Result<Vec<Sample>> {
    let mut service = Service::spawn(args, renderer, fonts_api)?;
    service.wait_ready(client).await?;
    let mut samples = vec![sample(&service, client, args.tabs, 0, None).await];
    let mut done = 0;
    let mut sizes = vec![0; docs.len()];
    while done < args.renders {
        let batch = args.sample_every.min(args.renders - done);
        let started = Instant::now();
        let service_ref = &service;
        let results: Vec<_> = futures::stream::iter(done..done + batch)
            .map(|i| async move {
                let doc = &docs[i % docs.len()];
                (i % docs.len(), service_ref.render(client, &doc.body).await)
            })
            .buffer_unordered(args.concurrency)
            .collect()
            .await;
        let rate = batch as f64 / started.elapsed().as_secs_f64();
        for (which, result) in results {
            let bytes = result.with_context(|| format!("rendering the {}", docs[which].name))?;
            sizes[which] = bytes;
        }
        done += batch;
        let s = sample(&service, client, args.tabs, done, Some(rate)).await;
        eprintln!(
            "{done}/{}: total PSS {}, {} processes, {} fds, {} temp files, {:.1} PDF/s",
            args.renders,
            mib(s.total()),
            s.processes,
            s.renderer_fds + s.chromium_fds,
            s.tmp_files,
            rate
        );
        samples.push(s);
    }
    let failed = service.metric(client, "tailpdf_renders_total{outcome=\"failed\"}").await;
    let status = service.stop()?;
    let sizes: Vec<String> =
        docs.iter().zip(&sizes).map(|(d, n)| format!("{} {} KB", d.name, n / 1000)).collect();
    eprintln!("PDF sizes: {}; failed renders: {failed:?}; exit: {status}", sizes.join(", "));
    anyhow::ensure!(status.success(), "the renderer did not exit cleanly: {status}");
    Ok(samples)
}

/// What a flatness figure is taken of, in KiB (`None`: not measured in that sample).
type Measure = fn(&Sample) -> Option<u64>;

fn report_memory(args: &Args, docs: &[Doc], samples: &[Sample]) {
    let names: Vec<&str> = docs.iter().map(|d| d.name).collect();
    println!(
        "### Memory: {} renders through `/render` ({} in turn), {} in flight, {} tabs, \
         `--restart-after {}`",
        args.renders,
        names.join(", "),
        args.concurrency,
        args.tabs,
        args.restart_after
    );
    println!();
    println!(
        "Each sample is taken at rest (tabs free, spare contexts made), the least of {READINGS} \
         readings 300 ms apart; then again once every page has collected its garbage (CDP \
         `HeapProfiler.collectGarbage`): memory held, apart from memory not collected yet."
    );
    println!();
    println!(
        "| renders | renderer PSS | Chromium PSS | total PSS | total PSS, garbage collected \
         (pages) | processes | fds (renderer + Chromium) | temp files | font cache files | \
         Chromium starts | PDF/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for s in samples {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} + {} | {} ({} KB) | {} | {} | {} |",
            s.renders,
            mib(s.renderer_pss),
            mib(s.chromium_pss),
            mib(s.total()),
            s.collected
                .map_or(String::from("—"), |(kib, pages)| format!("{} ({pages})", mib(kib))),
            s.processes,
            s.renderer_fds,
            s.chromium_fds,
            s.tmp_files,
            s.tmp_bytes / 1000,
            s.font_files,
            s.browser_starts + 1.0,
            s.pdf_per_s.map_or(String::from("—"), |r| format!("{r:.1}"))
        );
    }
    let after: Vec<&Sample> = samples.iter().filter(|s| s.renders >= args.warmup).collect();
    if after.len() >= 2 {
        let fds: Vec<usize> = after.iter().map(|s| s.renderer_fds).collect();
        let tmp: Vec<usize> = after.iter().map(|s| s.tmp_files).collect();
        println!();
        println!(
            "From {} renders on (goal ±10%): renderer fds {:?}; temp files {:?}.",
            args.warmup,
            (fds.iter().min(), fds.iter().max()),
            (tmp.iter().min(), tmp.iter().max())
        );
        let measures: [(&str, Measure); 2] = [
            ("total PSS", |s| Some(s.total())),
            ("total PSS, garbage collected", |s| s.collected.map(|(kib, _)| kib)),
        ];
        for (what, measure) in measures {
            let values: Vec<f64> =
                after.iter().filter_map(|s| measure(s)).map(|k| k as f64).collect();
            if let Some(spread) = spread(&values) {
                println!("- {what}: {spread}.");
            }
            report_by_age(args, &after, what, measure);
        }
    }
    println!();
}

/// The least, the greatest and the median of `values` (KiB), as MiB and as % of the median.
fn spread(values: &[f64]) -> Option<String> {
    if values.len() < 2 {
        return None;
    }
    let mid = median(values.to_vec());
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    Some(format!(
        "{} to {} around a median of {} ({:+.1}% / {:+.1}%)",
        mib(lo as u64),
        mib(hi as u64),
        mib(mid as u64),
        (lo / mid - 1.0) * 100.0,
        (hi / mid - 1.0) * 100.0
    ))
}

/// Chromium's memory grows over its life and drops when `--restart-after` replaces it: the
/// same flatness figure over samples taken at the same age of each Chromium tells growth
/// across Chromiums from that saw-tooth.
fn report_by_age(args: &Args, after: &[&Sample], what: &str, measure: fn(&Sample) -> Option<u64>) {
    let cycle = args.restart_after as usize;
    if cycle == 0 || !cycle.is_multiple_of(args.sample_every) {
        return;
    }
    let mut by_age: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    for s in after {
        // The restart comes with the first render past the cycle: a sample at a multiple of
        // it is of a Chromium at the end of its life.
        let age = match s.renders % cycle {
            0 => cycle,
            age => age,
        };
        if let Some(kib) = measure(s) {
            by_age.entry(age).or_default().push(kib as f64);
        }
    }
    for (age, values) in by_age {
        if let Some(spread) = spread(&values) {
            println!(
                "  - {what}, Chromium {age} renders old ({} samples): {spread}.",
                values.len()
            );
        }
    }
}

fn write_csv(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    let mut out = String::from(
        "renders,renderer_pss_kib,chromium_pss_kib,total_pss_kib,processes,renderer_fds,\
         chromium_fds,tmp_files,tmp_bytes,font_files,chromium_starts,pdf_per_s,\
         collected_total_pss_kib,collected_pages\n",
    );
    for s in samples {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            s.renders,
            s.renderer_pss,
            s.chromium_pss,
            s.total(),
            s.processes,
            s.renderer_fds,
            s.chromium_fds,
            s.tmp_files,
            s.tmp_bytes,
            s.font_files,
            s.browser_starts + 1.0,
            s.pdf_per_s.unwrap_or(0.0),
            s.collected.map_or(String::new(), |c| c.0.to_string()),
            s.collected.map_or(String::new(), |c| c.1.to_string())
        );
    }
    Ok(std::fs::write(path, out)?)
}

/// PSS (total, and Chromium's) over renders, as a small SVG line chart.
fn write_svg(path: &Path, samples: &[Sample]) -> anyhow::Result<()> {
    let (w, h, pad) = (640.0, 320.0, 50.0);
    let max_x = samples.last().map_or(1, |s| s.renders).max(1) as f64;
    let max_y = samples.iter().map(Sample::total).max().unwrap_or(1) as f64 / 1024.0 * 1.1;
    let x = |r: usize| pad + (r as f64 / max_x) * (w - 2.0 * pad);
    let y = |kib: u64| h - pad - (kib as f64 / 1024.0 / max_y) * (h - 2.0 * pad);
    let line = |f: &dyn Fn(&Sample) -> Option<u64>| {
        samples
            .iter()
            .filter_map(|s| Some(format!("{:.1},{:.1}", x(s.renders), y(f(s)?))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"11\"><rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/><line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\
         <line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"black\"/>\
         <text x=\"{pad}\" y=\"{t}\">PSS (MiB) over renders; black: renderer + Chromium, \
         teal: Chromium, orange: total, garbage collected</text><text x=\"{r}\" y=\"{xl}\" text-anchor=\"end\">{max_x} renders</text>\
         <text x=\"{yl}\" y=\"{ytop}\" text-anchor=\"end\">{max_y:.0}</text>\
         <text x=\"{yl}\" y=\"{b}\" text-anchor=\"end\">0</text>",
        b = h - pad,
        r = w - pad,
        t = pad - 20.0,
        xl = h - pad + 20.0,
        yl = pad - 5.0,
        ytop = pad + 4.0,
    );
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"black\" stroke-width=\"2\" points=\"{}\"/>\
         <polyline fill=\"none\" stroke=\"#0f766e\" stroke-width=\"2\" points=\"{}\"/>\
         <polyline fill=\"none\" stroke=\"#c2410c\" stroke-width=\"2\" points=\"{}\"/></svg>",
        line(&|s: &Sample| Some(s.total())),
        line(&|s: &Sample| Some(s.chromium_pss)),
        line(&|s: &Sample| s.collected.map(|(kib, _)| kib))
    );
    Ok(std::fs::write(path, svg)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let renderer = match &args.renderer {
        Some(path) => path.clone(),
        None => std::env::current_exe()?.with_file_name("tailpdf-renderer"),
    };
    let invoice = std::fs::read_to_string(&args.input)
        .with_context(|| format!("{}", args.input.display()))?;
    let docs = documents(&invoice)?;
    let fonts_api = font_server(&args.font).await?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("## `tailpdf-soak`, {date}, {}", tailpdf_renderer::measure::revision());
    println!();
    if args.cold_starts > 0 {
        cold_starts(&args, &renderer, &fonts_api, &client, &docs[0].body).await?;
    }
    if args.renders > 0 {
        let samples = memory(&args, &renderer, &fonts_api, &client, &docs).await?;
        report_memory(&args, &docs, &samples);
        if let Some(path) = &args.csv {
            write_csv(path, &samples)?;
        }
        if let Some(path) = &args.svg {
            write_svg(path, &samples)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_pss_and_open_files_and_an_ended_one_none() {
        let me = std::process::id();
        assert!(pss_kib(me) > 1024, "{} KiB", pss_kib(me));
        assert!(fd_count(me) >= 3, "stdin, stdout, stderr at least");
        assert_eq!((pss_kib(u32::MAX), fd_count(u32::MAX)), (0, 0));
    }
}
