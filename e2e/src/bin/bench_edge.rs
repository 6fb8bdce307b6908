//! `tailpdf-bench-edge`: what the edge itself takes for `POST /pdf` and a job's events, this
//! tree's Worker against another commit's (by default 39e5cc9, where every key of a job was
//! in Workers KV), both under `wrangler dev --local` at once and asked in turn, so that the
//! machine's drift (2× within the hour here) hits both alike. Read the ratios.
//!
//!   make bench-edge [BASE=<commit>] [ARGS="--samples 400"]
//!
//! Each sample is one async job with a webhook and an `Idempotency-Key`, on each Worker in
//! turn (which goes first alternates): `POST /pdf` (202), then the renderer's three signed
//! events, `processing`, `uploading`, `completed`, as `POST /internal/jobs/{id}/events`, each
//! timed from the request to the whole answer. No renderer runs: push mode's consumer finds a
//! stand-in that answers `ended` at once, and the webhooks go to a local receiver, so the
//! background work is the same small amount for both. The Workers run wrangler.toml's own
//! settings (limits included), but for the secrets and loopback.
//!
//! Under `wrangler dev` KV, Queues and the Durable Objects are Miniflare's, in one process on
//! one machine: an object's call costs no network here, and KV shows every write at once.
//! These figures say what each design's code and local storage take, not what Cloudflare's
//! network adds (a job's object may be a continent away from the renderer).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{ensure, Context};
use axum::{routing::post, Json, Router};
use clap::Parser;
use serde_json::{json, Value};
use tailpdf_e2e::{
    free_port, now, percentile,
    process::Process,
    root,
    servers::Served,
    stack::{Receiver, API_KEY, INTERNAL_SECRET},
};
use tailpdf_shared::signing::{hash_api_key, sign_internal, INTERNAL_SIGNATURE_HEADER};

#[derive(Parser)]
#[command(about = "POST /pdf and a job's events under wrangler dev: this tree against a base")]
struct Args {
    /// A worktree of the base commit with its Worker built (`make build-edge` there).
    #[arg(long)]
    base: PathBuf,
    /// What to call the base in the report (its commit).
    #[arg(long, default_value = "39e5cc9")]
    base_name: String,
    /// Jobs on each Worker (each: one POST /pdf and three events).
    #[arg(long, default_value_t = 250)]
    samples: usize,
    /// Jobs on each Worker before measuring (compilation, caches, the objects' first use).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
}

const ACCOUNT: &str = "bench";

/// One Worker under `wrangler dev --local`, run from its own tree with its own state.
struct Worker {
    name: String,
    url: String,
    _process: Process,
    _state: tempfile::TempDir,
}

impl Worker {
    /// Seeds the API key into `tree`'s local KV and starts its built Worker; `renderer` is
    /// where push mode's consumer hands jobs.
    async fn start(name: &str, tree: &Path, renderer: &str) -> anyhow::Result<Self> {
        let worker = tree.join("edge/build/worker/shim.mjs");
        ensure!(worker.exists(), "{} is not built: `make build-edge` there", tree.display());
        fresh(&worker, &[tree.join("edge/src"), tree.join("shared/src")])?;
        let state = tempfile::tempdir()?;
        let account = json!({"account": ACCOUNT, "webhook_secret": "bench-webhook-secret"});
        let seed = json!([
            {"key": format!("key:{}", hash_api_key(API_KEY)), "value": account.to_string()},
            {"key": format!("account:{ACCOUNT}"), "value": account.to_string()},
        ]);
        let seed_file = state.path().join("keys.json");
        std::fs::write(&seed_file, seed.to_string())?;
        let out = wrangler(tree)
            .args(["kv", "bulk", "put", "--local", "--binding", "API_KEYS", "--persist-to"])
            .arg(state.path().join("wrangler"))
            .arg(&seed_file)
            .output()?;
        ensure!(out.status.success(), "seeding {name}'s API key failed: {out:?}");
        let port = free_port();
        let mut cmd = wrangler(tree);
        cmd.args(["dev", "--local", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .args(["--show-interactive-dev-session=false", "--persist-to"])
            .arg(state.path().join("wrangler"));
        for (var, value) in [
            ("INTERNAL_SECRET", INTERNAL_SECRET),
            ("ALLOW_LOOPBACK", "true"),
            ("RENDERER_URL", renderer),
        ] {
            cmd.args(["--var", &format!("{var}:{value}")]);
        }
        let log = state.path().join("wrangler.log");
        let mut process = Process::spawn(&format!("wrangler dev ({name})"), cmd, &log);
        let url = format!("http://127.0.0.1:{port}");
        let index = format!("{url}/");
        process
            .wait_until(Duration::from_secs(120), async || {
                reqwest::get(&index).await.is_ok_and(|r| r.status().is_success())
            })
            .await;
        Ok(Self { name: name.to_owned(), url, _process: process, _state: state })
    }
}

fn wrangler(tree: &Path) -> Command {
    let bin = root().join("node_modules/.bin");
    let mut cmd = Command::new(bin.join("wrangler"));
    cmd.current_dir(tree)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
    cmd
}

/// `built` must be newer than every file under `sources`: an old build measures nothing.
fn fresh(built: &Path, sources: &[PathBuf]) -> anyhow::Result<()> {
    fn newest(path: &Path) -> anyhow::Result<SystemTime> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_dir() {
            return Ok(meta.modified()?);
        }
        let mut newest_seen = SystemTime::UNIX_EPOCH;
        for entry in std::fs::read_dir(path)? {
            newest_seen = newest_seen.max(newest(&entry?.path())?);
        }
        Ok(newest_seen)
    }
    let built_at = std::fs::metadata(built)?.modified()?;
    for dir in sources {
        ensure!(
            newest(dir)? <= built_at,
            "{} is older than {}: `make build-edge` there",
            built.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Push mode's renderer, answering every job "ended" at once.
async fn stand_in_renderer() -> Served {
    Served::start(|_| {
        Router::new().route("/jobs/take", post(|| async { Json(json!({"status": "ended"})) }))
    })
    .await
}

/// The times of one Worker's requests.
#[derive(Default)]
struct Times {
    post_pdf: Vec<Duration>,
    /// processing, uploading, completed.
    events: [Vec<Duration>; 3],
}

/// One job on `worker`: `POST /pdf`, then its three events; each call's time.
async fn job(
    http: &reqwest::Client,
    worker: &Worker,
    receiver: &str,
    n: usize,
) -> anyhow::Result<(Duration, [Duration; 3])> {
    let body = json!({
        "content": format!(
            "<div class=\"p-8 font-sans\"><h1 class=\"text-2xl font-semibold\">Invoice #{n}</h1>\
             <table class=\"w-full mt-6\"><tr><td>Design work</td><td class=\"text-right\">\
             $1,200.00</td></tr></table></div>"
        ),
        "async": true,
        "upload_url": format!("http://127.0.0.1:9/pdfs/{n}.pdf?X-Amz-Signature=abc"),
        "webhook_url": receiver,
        "pdfOptions": {"format": "A4", "printBackground": true},
    });
    let at = Instant::now();
    let reply = http
        .post(format!("{}/pdf", worker.url))
        .header("X-API-Key", API_KEY)
        .header("Idempotency-Key", format!("bench-{}-{n}", worker.name.replace(' ', "-")))
        .json(&body)
        .send()
        .await?;
    let status = reply.status();
    let answer: Value = reply.json().await?;
    let post_pdf = at.elapsed();
    ensure!(status == 202, "{}: POST /pdf answered {status}: {answer}", worker.name);
    let id = answer["job_id"].as_str().context("no job_id")?;
    let path = format!("/internal/jobs/{id}/events");
    let stamp = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let events = [
        json!({"status": "processing", "at": stamp}),
        json!({"status": "uploading", "at": stamp}),
        json!({"status": "completed", "at": stamp, "result":
            {"file_size_bytes": 69_000, "render_duration_ms": 400, "upload_duration_ms": 80}}),
    ];
    let mut took = [Duration::ZERO; 3];
    for (event, took) in events.iter().zip(&mut took) {
        let body = serde_json::to_vec(event)?;
        let signature = sign_internal(INTERNAL_SECRET, now(), "POST", &path, &body);
        let at = Instant::now();
        let reply = http
            .post(format!("{}{path}", worker.url))
            .header(INTERNAL_SIGNATURE_HEADER, signature)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = reply.status();
        let answer = reply.bytes().await?;
        *took = at.elapsed();
        ensure!(
            status == 200,
            "{}: {event} answered {status}: {}",
            worker.name,
            String::from_utf8_lossy(&answer)
        );
    }
    Ok((post_pdf, took))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn row(what: &str, base: &[Duration], this: &[Duration]) -> String {
    let (b50, t50) = (percentile(base, 0.5), percentile(this, 0.5));
    format!(
        "| {what} | {} | {} | {} | {} | {} | **{:.2}** |",
        base.len(),
        ms(b50),
        ms(percentile(base, 0.9)),
        ms(t50),
        ms(percentile(this, 0.9)),
        t50.as_secs_f64() / b50.as_secs_f64()
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let renderer = stand_in_renderer().await;
    let receiver = Receiver::start(0).await;
    let base = Worker::start(&args.base_name, &args.base, &renderer.base).await?;
    let this = Worker::start("this tree", &root(), &renderer.base).await?;
    eprintln!("{} at {}, this tree at {}", base.name, base.url, this.url);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let workers = [&base, &this];
    let mut times = [Times::default(), Times::default()];
    let started = Instant::now();
    for n in 0..args.warmup + args.samples {
        // Each goes first every other time.
        let order = if n % 2 == 0 { [0, 1] } else { [1, 0] };
        for w in order {
            let (post_pdf, events) = job(&http, workers[w], &receiver.url, n).await?;
            if n >= args.warmup {
                times[w].post_pdf.push(post_pdf);
                for (all, took) in times[w].events.iter_mut().zip(events) {
                    all.push(took);
                }
            }
        }
        if (n + 1) % 50 == 0 {
            eprintln!("{} jobs on each, {:.0?}", n + 1, started.elapsed());
        }
    }
    let [b, t] = &times;
    let every = |t: &Times| t.events.iter().flatten().copied().collect::<Vec<_>>();
    println!(
        "| request | samples each | {} p50 | p90 | this tree p50 | p90 | this / {} (p50) |",
        args.base_name, args.base_name
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "{}",
        row("`POST /pdf` (async, webhook, Idempotency-Key) → 202", &b.post_pdf, &t.post_pdf)
    );
    for (i, name) in ["processing", "uploading", "completed"].iter().enumerate() {
        println!("{}", row(&format!("event `{name}`"), &b.events[i], &t.events[i]));
    }
    println!("{}", row("every event", &every(b), &every(t)));
    eprintln!(
        "{} jobs on each after {} to warm up, {:.0?}; webhooks received: {}",
        args.samples,
        args.warmup,
        started.elapsed(),
        receiver.all().len()
    );
    Ok(())
}
