//! `tailpdf-bench-stack`: the whole local stack measured against its own renderer, in one run
//! (these machines' speed varies by 2× from hour to hour: read the ratios).
//!
//!   make bench-stack   (a release renderer; figures go into BENCHMARKS.md)
//!
//! The stack is `make test`'s: wrangler dev (the Worker, Miniflare's KV and Queues), the
//! renderer, s3s-fs checking each presigned PUT, a webhook receiver; in pull mode the renderer
//! pulls from the Queues pull stand-in. For each mode and each (jobs × clients):
//! - the baseline: the renderer alone, its signed `/render` called directly by 2 × tabs
//!   clients (the engine behind one HTTP call, same tabs, same document);
//! - N async jobs from C clients: jobs/s, submit→202 and submit→webhook, and where a job's
//!   time goes (before the renderer, from the job's timestamps; in the renderer, from its
//!   metrics: render, upload, and the rest, which is the job's calls to the edge);
//! - the same N as sync renders through the edge, from as many clients as the baseline (push
//!   mode: pull mode has no sync path);
//! - on the idle stack, one request at a time: what the edge adds to a sync render and to an
//!   async job's render.

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{ensure, Context};
use clap::Parser;
use serde_json::{json, Value};
use tailpdf_e2e::{
    client::internal,
    percentile,
    stack::{Settings, Stack, API_KEY},
};

#[derive(Parser)]
#[command(about = "Benchmarks the whole local stack (edge, queue, renderer, bucket, webhooks)")]
struct Args {
    /// Runs as JOBSxCLIENTS, comma-separated.
    #[arg(long, default_value = "200x20,500x50", value_delimiter = ',')]
    runs: Vec<String>,
    /// Modes to run: push (the Worker's consumer hands jobs to the renderer), pull (the
    /// renderer pulls from the Queues pull stand-in).
    #[arg(long, default_value = "push,pull", value_delimiter = ',')]
    modes: Vec<String>,
    /// The renderer's tabs.
    #[arg(long, default_value_t = 2)]
    tabs: usize,
    /// Requests of each idle (one at a time) measurement.
    #[arg(long, default_value_t = 30)]
    idle: usize,
    /// The document.
    #[arg(long, default_value = "examples/invoice.html")]
    input: PathBuf,
    /// Documents of the batch run (push mode; 0: none).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Only the batch run (with its baseline of as many single async jobs).
    #[arg(long)]
    batch_only: bool,
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("a client")
}

/// The PDF options of every request.
fn options() -> Value {
    json!({"format": "A4", "printBackground": true})
}

/// `count` requests from `clients` clients, each one after the other; `call(i)` makes the
/// i-th and says how long it took. Returns the durations and the whole run's time.
async fn from_clients<F, Fut>(
    count: usize,
    clients: usize,
    call: F,
) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Duration>> + Send,
{
    let call = Arc::new(call);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let call = call.clone();
        tasks.spawn(async move {
            let mut took = Vec::new();
            for i in (c..count).step_by(clients) {
                took.push(call(i).await?);
            }
            anyhow::Ok(took)
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done??);
    }
    Ok((all, started.elapsed()))
}

/// The renderer alone: `count` signed `/render` calls from 2 × tabs clients.
async fn renderer_alone(
    renderer: &str,
    content: &str,
    count: usize,
    clients: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let (renderer, body) = (
        renderer.to_owned(),
        serde_json::to_vec(&json!({"content": content, "pdfOptions": options()}))?,
    );
    from_clients(count, clients, move |_| {
        let (renderer, body) = (renderer.clone(), body.clone());
        async move {
            let at = Instant::now();
            let reply = internal(&renderer, reqwest::Method::POST, "/render", body).await;
            ensure!(reply.status == 200, "/render answered {}", reply.status);
            Ok(at.elapsed())
        }
    })
    .await
}

/// Sync renders through the edge's POST /pdf.
async fn sync_through_edge(
    edge: &str,
    content: &str,
    count: usize,
    clients: usize,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let http = client();
    let (url, body) = (format!("{edge}/pdf"), json!({"content": content, "pdfOptions": options()}));
    from_clients(count, clients, move |_| {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        async move {
            let at = Instant::now();
            let reply = http.post(&url).header("X-API-Key", API_KEY).json(&body).send().await?;
            let status = reply.status();
            let pdf = reply.bytes().await?;
            ensure!(status == 200 && pdf.starts_with(b"%PDF"), "sync POST /pdf answered {status}");
            Ok(at.elapsed())
        }
    })
    .await
}

/// One async job as a client sees it.
struct Job {
    id: String,
    submitted: Instant,
    accepted_after: Duration,
}

/// Submits `count` async jobs of `content` from `clients` clients, each one after the other.
async fn submit_jobs(
    stack: &Stack,
    content: &str,
    count: usize,
    clients: usize,
    tag: &str,
) -> anyhow::Result<Vec<Job>> {
    submit_documents(stack, |_| content.to_owned(), count, clients, tag).await
}

/// Submits `count` async jobs, the i-th of `content(i)`, from `clients` clients.
async fn submit_documents(
    stack: &Stack,
    content: impl Fn(usize) -> String,
    count: usize,
    clients: usize,
    tag: &str,
) -> anyhow::Result<Vec<Job>> {
    let http = client();
    let url = format!("{}/pdf", stack.edge.url);
    let bodies: Vec<Value> = (0..count)
        .map(|i| stack.async_job(&content(i), &stack.bucket.upload_url(&format!("{tag}/{i}.pdf"))))
        .collect();
    let bodies = Arc::new(bodies);
    let jobs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = jobs.clone();
    from_clients(count, clients, move |i| {
        let (http, url, bodies, sink) = (http.clone(), url.clone(), bodies.clone(), sink.clone());
        async move {
            let submitted = Instant::now();
            let reply =
                http.post(&url).header("X-API-Key", API_KEY).json(&bodies[i]).send().await?;
            let accepted_after = submitted.elapsed();
            ensure!(reply.status() == 202, "async POST /pdf answered {}", reply.status());
            let id =
                reply.json::<Value>().await?["job_id"].as_str().context("no job_id")?.to_owned();
            sink.lock().expect("not poisoned").push(Job { id, submitted, accepted_after });
            Ok(accepted_after)
        }
    })
    .await?;
    let jobs = std::mem::take(&mut *jobs.lock().expect("not poisoned"));
    Ok(jobs)
}

/// When each job's webhook arrived, in the order of `jobs`; waits for all of them.
async fn webhooks_of(stack: &Stack, jobs: &[Job]) -> anyhow::Result<Vec<Instant>> {
    let wanted: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let deadline =
        Instant::now() + Duration::from_secs(60) + jobs.len() as u32 * Duration::from_secs(2);
    loop {
        let arrived: std::collections::HashMap<String, (Instant, String)> = stack
            .receiver
            .all()
            .into_iter()
            .filter_map(|d| {
                let body = d.json();
                let id = body["job_id"].as_str()?.to_owned();
                wanted
                    .contains(id.as_str())
                    .then(|| (id, (d.at, d.header("x-tailpdf-event").to_owned())))
            })
            .collect();
        if arrived.len() == wanted.len() {
            let failed = arrived.values().filter(|(_, event)| event != "render.completed").count();
            ensure!(failed == 0, "{failed} jobs did not complete");
            return Ok(jobs.iter().map(|j| arrived[&j.id].0).collect());
        }
        ensure!(
            Instant::now() < deadline,
            "{} of {} webhooks arrived in time",
            arrived.len(),
            wanted.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A histogram's sum and count in the renderer's metrics.
async fn histogram(renderer: &str, name: &str) -> anyhow::Result<(f64, f64)> {
    let text = client().get(format!("{renderer}/metrics")).send().await?.text().await?;
    let value = |suffix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}_{suffix} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((value("sum"), value("count")))
}

const METRICS: [&str; 3] = [
    "tailpdf_job_duration_seconds",
    "tailpdf_render_duration_seconds",
    "tailpdf_upload_duration_seconds",
];

async fn snapshot(renderer: &str) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for name in METRICS {
        out.push(histogram(renderer, name).await?);
    }
    Ok(out)
}

/// Mean seconds per observation of each histogram between two snapshots.
fn means(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|((s0, c0), (s1, c1))| if c1 > c0 { (s1 - s0) / (c1 - c0) } else { 0.0 })
        .collect()
}

/// Mean seconds from `created_at` to `started_at` of these jobs (GET /jobs/{id}; the
/// timestamps have whole seconds, so over many jobs the mean is within a fraction of one).
async fn mean_queue_secs(stack: &Stack, jobs: &[Job]) -> anyhow::Result<f64> {
    let http = client();
    let mut total = 0.0;
    for job in jobs {
        let record: Value = http
            .get(format!("{}/jobs/{}", stack.edge.url, job.id))
            .header("X-API-Key", API_KEY)
            .send()
            .await?
            .json()
            .await?;
        let at = |field: &str| {
            record[field]
                .as_str()
                .and_then(|t| tailpdf_shared::Timestamp::parse(t).ok())
                .map(|t| t.unix() as f64)
        };
        total += at("started_at").zip(at("created_at")).map_or(0.0, |(s, c)| s - c);
    }
    Ok(total / jobs.len().max(1) as f64)
}

/// CPU seconds so far of this process and its descendants (the stack's parts), by part.
/// Processes that ended meanwhile are missed, unless their parent has reaped them (then
/// they count in its children's time).
fn cpu_by_part() -> std::collections::BTreeMap<String, f64> {
    let mut parent_of = std::collections::HashMap::new();
    let mut stats = std::collections::HashMap::new();
    for process in procfs::process::all_processes().into_iter().flatten().flatten() {
        let Ok(stat) = process.stat() else { continue };
        let (Ok(pid), Ok(ppid)) = (u32::try_from(stat.pid), u32::try_from(stat.ppid)) else {
            continue;
        };
        parent_of.insert(pid, ppid);
        let children = u64::try_from(stat.cutime + stat.cstime).unwrap_or(0);
        stats.insert(pid, (stat.comm, stat.utime + stat.stime + children));
    }
    let me = std::process::id();
    let ours = |mut pid: u32| {
        while pid > 1 {
            if pid == me {
                return true;
            }
            pid = parent_of.get(&pid).copied().unwrap_or(0);
        }
        false
    };
    let mut by_part = std::collections::BTreeMap::new();
    for (pid, (comm, ticks)) in &stats {
        if !ours(*pid) {
            continue;
        }
        let part = match comm.as_str() {
            // One part: Chromium's processes that end (restarts) are counted in the
            // renderer's children's time once it reaps them.
            c if c.starts_with("chrom") || c.starts_with("tailpdf-render") => {
                "the renderer and its Chromium"
            }
            "workerd" => "workerd (the Worker, KV, Queues)",
            c if c.starts_with("tailpdf-bench") || c.starts_with("tokio") => {
                "clients and webhook receiver (this benchmark)"
            }
            "s3s-fs" => "s3s-fs",
            _ => "wrangler (node) and others",
        };
        // CLK_TCK is 100 on Linux.
        *by_part.entry(part.to_owned()).or_insert(0.0) +=
            *ticks as f64 / procfs::ticks_per_second() as f64;
    }
    by_part
}

struct Run {
    mode: &'static str,
    jobs: usize,
    clients: usize,
    alone: f64,
    rate: f64,
    accepted: (Duration, Duration),
    webhook: (Duration, Duration),
    queue_secs: f64,
    in_renderer: Vec<f64>,
    /// CPU milliseconds per job, by part of the stack.
    cpu_per_job: std::collections::BTreeMap<String, f64>,
    sync: Option<(f64, f64, Duration, Duration)>,
}

async fn run(
    stack: &Stack,
    mode: &'static str,
    content: &str,
    (jobs, clients): (usize, usize),
    tabs: usize,
) -> anyhow::Result<Run> {
    eprintln!("{mode}: {jobs} jobs from {clients} clients");
    let baseline_count = (jobs / 2).max(100);
    let (_, took) = renderer_alone(&stack.renderer.url, content, baseline_count, 2 * tabs).await?;
    let alone = baseline_count as f64 / took.as_secs_f64();

    let before = snapshot(&stack.renderer.url).await?;
    let cpu_before = cpu_by_part();
    let tag = format!("{mode}-{jobs}x{clients}");
    let submitted = submit_jobs(stack, content, jobs, clients, &tag).await?;
    let arrived = webhooks_of(stack, &submitted).await?;
    let after = snapshot(&stack.renderer.url).await?;
    let cpu_per_job = cpu_by_part()
        .into_iter()
        .map(|(part, secs)| {
            let spent = secs - cpu_before.get(&part).copied().unwrap_or(0.0);
            (part, spent * 1e3 / jobs as f64)
        })
        .collect();
    let first = submitted.iter().map(|j| j.submitted).min().context("no jobs")?;
    let last = arrived.iter().max().copied().context("no webhooks")?;
    let rate = jobs as f64 / (last - first).as_secs_f64();
    let to_accepted: Vec<Duration> = submitted.iter().map(|j| j.accepted_after).collect();
    let to_webhook: Vec<Duration> =
        submitted.iter().zip(&arrived).map(|(j, at)| *at - j.submitted).collect();
    let queue_secs = mean_queue_secs(stack, &submitted).await?;
    let sync = if mode == "push" {
        // As many clients as the baseline's: more would only meet the renderer's 503s (its
        // tabs and queue places are taken), which a sync client must then retry.
        let (took, all) = sync_through_edge(&stack.edge.url, content, jobs, 2 * tabs).await?;
        let rate = jobs as f64 / all.as_secs_f64();
        // Its own baseline right after, so that the machine's drift does not creep in.
        let (_, alone_took) =
            renderer_alone(&stack.renderer.url, content, baseline_count, 2 * tabs).await?;
        let alone_after = baseline_count as f64 / alone_took.as_secs_f64();
        Some((rate, alone_after, percentile(&took, 0.5), percentile(&took, 0.95)))
    } else {
        None
    };
    Ok(Run {
        mode,
        jobs,
        clients,
        alone,
        rate,
        accepted: (percentile(&to_accepted, 0.5), percentile(&to_accepted, 0.95)),
        webhook: (percentile(&to_webhook, 0.5), percentile(&to_webhook, 0.95)),
        queue_secs,
        in_renderer: means(&before, &after),
        cpu_per_job,
        sync,
    })
}

/// CPU milliseconds of workerd and of wrangler's node per request, over `count` requests of
/// `path` one at a time: what a request costs the local edge with and without KV reads.
async fn edge_cpu_per_request(
    stack: &Stack,
    path: &str,
    count: usize,
) -> anyhow::Result<(f64, f64)> {
    let http = client();
    let edge_parts = |cpu: &std::collections::BTreeMap<String, f64>| {
        let get = |prefix: &str| {
            cpu.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, v)| v).sum::<f64>()
        };
        (get("workerd"), get("wrangler"))
    };
    let before = edge_parts(&cpu_by_part());
    for _ in 0..count {
        let reply = http
            .get(format!("{}{path}", stack.edge.url))
            .header("X-API-Key", API_KEY)
            .send()
            .await?;
        ensure!(reply.status().is_success(), "GET {path} answered {}", reply.status());
        reply.bytes().await?;
    }
    let after = edge_parts(&cpu_by_part());
    let per = |a: f64, b: f64| (a - b) * 1e3 / count as f64;
    Ok((per(after.0, before.0), per(after.1, before.1)))
}

/// The idle stack, one request at a time.
struct Idle {
    render_alone: Duration,
    sync_edge: Option<Duration>,
    async_webhook: Duration,
    async_render: Duration,
    /// workerd and node CPU ms per GET / (no KV) and per GET /jobs/{id} (six KV reads).
    cpu_index: (f64, f64),
    cpu_job: (f64, f64),
}

async fn idle(stack: &Stack, mode: &str, content: &str, count: usize) -> anyhow::Result<Idle> {
    eprintln!("{mode}: idle, one at a time");
    let (alone, _) = renderer_alone(&stack.renderer.url, content, count, 1).await?;
    let sync_edge = if mode == "push" {
        Some(percentile(&sync_through_edge(&stack.edge.url, content, count, 1).await?.0, 0.5))
    } else {
        None
    };
    let mut to_webhook = Vec::new();
    let mut renders = Vec::new();
    for i in 0..count {
        let jobs = submit_jobs(stack, content, 1, 1, &format!("{mode}-idle-{i}")).await?;
        let arrived = webhooks_of(stack, &jobs).await?;
        to_webhook.push(arrived[0] - jobs[0].submitted);
        let delivery = stack.receiver.for_job(&jobs[0].id);
        let render_ms = delivery
            .first()
            .and_then(|d| d.json()["data"]["render_duration_ms"].as_u64())
            .context("render_duration_ms in the webhook")?;
        renders.push(Duration::from_millis(render_ms));
    }
    let job_path = format!(
        "/jobs/{}",
        stack
            .receiver
            .all()
            .last()
            .map(|d| d.json()["job_id"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    );
    let cpu_index = edge_cpu_per_request(stack, "/", 200).await?;
    let cpu_job = edge_cpu_per_request(stack, &job_path, 200).await?;
    Ok(Idle {
        cpu_index,
        cpu_job,
        render_alone: percentile(&alone, 0.5),
        sync_edge,
        async_webhook: percentile(&to_webhook, 0.5),
        async_render: percentile(&renders, 0.5),
    })
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["log", "-1", "--format=%h %cs"]).unwrap_or_else(|| "unknown".into());
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{commit} with uncommitted changes"),
        _ => commit,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = tailpdf_e2e::root();
    let content = std::fs::read_to_string(root.join(&args.input))
        .with_context(|| format!("{}", args.input.display()))?;
    let runs: Vec<(usize, usize)> = args
        .runs
        .iter()
        .map(|r| {
            let (n, c) = r.split_once('x').context("a run is JOBSxCLIENTS")?;
            Ok((n.parse()?, c.parse()?))
        })
        .collect::<anyhow::Result<_>>()?;
    if args.batch_only {
        let stack =
            Stack::start(Settings { release: true, tabs: args.tabs, ..Settings::default() }).await;
        let batch = batch_run(&stack, &content, args.batch).await?;
        print_batch(&args, &batch);
        return Ok(());
    }
    let mut results = Vec::new();
    let mut idles = Vec::new();
    let mut batch = None;
    for mode in &args.modes {
        let mode: &'static str = match mode.as_str() {
            "push" => "push",
            "pull" => "pull",
            other => anyhow::bail!("no mode {other}: push or pull"),
        };
        let settings = Settings {
            pull: mode == "pull",
            release: true,
            tabs: args.tabs,
            ..Settings::default()
        };
        let stack = Stack::start(settings).await;
        // Warm-up: the Tailwind compiler, tabs, the Worker's isolate, connections.
        renderer_alone(&stack.renderer.url, &content, 20, 2).await?;
        let warm = submit_jobs(&stack, &content, 20, 4, &format!("{mode}-warm")).await?;
        webhooks_of(&stack, &warm).await?;
        idles.push((mode, idle(&stack, mode, &content, args.idle).await?));
        for &(jobs, clients) in &runs {
            results.push(run(&stack, mode, &content, (jobs, clients), args.tabs).await?);
        }
        if mode == "push" && args.batch > 0 {
            batch = Some(batch_run(&stack, &content, args.batch).await?);
        }
    }
    report(&args, &results, &idles);
    if let Some(batch) = &batch {
        print_batch(&args, batch);
    }
    Ok(())
}

/// One batch of `count` distinct invoices end to end, against as many single async jobs of
/// the same invoices just before (20 clients).
struct BatchRun {
    count: usize,
    singles_rate: f64,
    accepted: Duration,
    rate: f64,
    first_webhook: Duration,
    batch_webhook: Duration,
    grouped: f64,
    /// CPU milliseconds per document by part of the stack: single jobs, the batch.
    cpu: Vec<(String, f64, f64)>,
}

/// CPU milliseconds per document by part, between two readings of [`cpu_by_part`].
fn cpu_per_document(
    before: &std::collections::BTreeMap<String, f64>,
    after: &std::collections::BTreeMap<String, f64>,
    count: usize,
) -> std::collections::BTreeMap<String, f64> {
    after
        .iter()
        .map(|(part, secs)| {
            let spent = secs - before.get(part).copied().unwrap_or(0.0);
            (part.clone(), spent * 1e3 / count as f64)
        })
        .collect()
}

async fn batch_run(stack: &Stack, content: &str, count: usize) -> anyhow::Result<BatchRun> {
    eprintln!("push: a batch of {count} documents");
    let invoice =
        |i: usize| content.replace("#INV-2024-1234", &format!("#INV-2024-{}", 20_000 + i));
    // The baseline: the same documents as single async jobs.
    let cpu_start = cpu_by_part();
    let singles = submit_documents(stack, invoice, count, 20, "singles").await?;
    let arrived = webhooks_of(stack, &singles).await?;
    let first = singles.iter().map(|j| j.submitted).min().context("no jobs")?;
    let singles_rate =
        count as f64 / (*arrived.iter().max().context("none")? - first).as_secs_f64();
    let cpu_singles = cpu_by_part();

    let grouped_before = counter(&stack.renderer.url, "tailpdf_grouped_documents_total").await?;
    let documents: Vec<Value> = (0..count)
        .map(|i| {
            json!({
                "content": invoice(i),
                "upload_url": stack.bucket.upload_url(&format!("batch/{i}.pdf")),
                "webhook_url": stack.receiver.url,
            })
        })
        .collect();
    let body =
        json!({"pdfOptions": options(), "webhook_url": stack.receiver.url, "documents": documents});
    let submitted = Instant::now();
    let reply = client()
        .post(format!("{}/pdf/batch", stack.edge.url))
        .header("X-API-Key", API_KEY)
        .json(&body)
        .send()
        .await?;
    let accepted = submitted.elapsed();
    ensure!(reply.status() == 202, "POST /pdf/batch answered {}", reply.status());
    let answer: Value = reply.json().await?;
    let batch_id = answer["batch_id"].as_str().context("no batch_id")?.to_owned();
    let jobs: Vec<Job> = answer["jobs"]
        .as_array()
        .context("no jobs")?
        .iter()
        .map(|j| Job {
            id: j["job_id"].as_str().unwrap_or_default().to_owned(),
            submitted,
            accepted_after: accepted,
        })
        .collect();
    ensure!(jobs.len() == count, "{} jobs for {count} documents", jobs.len());
    let arrived = webhooks_of(stack, &jobs).await?;
    // Every job webhook verified, and the one batch webhook.
    let key = tailpdf_shared::signing::StandardWebhookKey::from_secret(
        tailpdf_e2e::stack::WEBHOOK_SECRET,
    );
    let wanted: HashSet<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    let mut verified = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let batch_at = loop {
        let all = stack.receiver.all();
        if let Some(d) = all.iter().find(|d| d.json()["batch_id"] == batch_id.as_str()) {
            for d in &all {
                let body = d.json();
                let id = body["job_id"]
                    .as_str()
                    .or_else(|| body["batch_id"].as_str())
                    .unwrap_or_default();
                if wanted.contains(id) || id == batch_id {
                    let (wid, ts) = (d.header("webhook-id"), d.header("webhook-timestamp"));
                    // The signature, checked at the time it was sent (the run outlasts the
                    // receivers' 5-minute tolerance for the first webhooks).
                    let sent: i64 = ts.parse().context("webhook-timestamp")?;
                    let signature = d.header("webhook-signature");
                    ensure!(
                        key.verify(wid, ts, signature, &d.body, sent).is_ok(),
                        "{wid} does not verify"
                    );
                    verified += 1;
                }
            }
            break d.at;
        }
        ensure!(Instant::now() < deadline, "no batch.completed webhook");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    ensure!(verified > count, "{verified} webhooks verified");
    let objects =
        (0..count).filter(|i| stack.bucket.object(&format!("batch/{i}.pdf")).is_some()).count();
    ensure!(objects == count, "{objects} of {count} objects uploaded");
    let last = arrived.iter().max().copied().context("no webhooks")?;
    let grouped =
        counter(&stack.renderer.url, "tailpdf_grouped_documents_total").await? - grouped_before;
    let singles_cpu = cpu_per_document(&cpu_start, &cpu_singles, count);
    let batch_cpu = cpu_per_document(&cpu_singles, &cpu_by_part(), count);
    let cpu = singles_cpu
        .iter()
        .map(|(part, ms)| (part.clone(), *ms, batch_cpu.get(part).copied().unwrap_or(0.0)))
        .collect();
    Ok(BatchRun {
        count,
        singles_rate,
        accepted,
        rate: count as f64 / (last - submitted).as_secs_f64(),
        first_webhook: *arrived.iter().min().context("none")? - submitted,
        batch_webhook: batch_at - submitted,
        grouped,
        cpu,
    })
}

/// A counter of the renderer's metrics.
async fn counter(renderer: &str, name: &str) -> anyhow::Result<f64> {
    let text = client().get(format!("{renderer}/metrics")).send().await?.text().await?;
    Ok(text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse().ok()).unwrap_or(0.0))
}

fn print_batch(args: &Args, b: &BatchRun) {
    println!(
        "\n### A batch of {} distinct invoices end to end (push mode, {} tab(s)); {}\n",
        b.count,
        args.tabs,
        revision()
    );
    println!("| | documents per second | vs single async jobs | 202 after | first webhook | batch.completed after | printed in groups |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} single async jobs (20 clients) | {:.1} | 1.00× | | | | |",
        b.count, b.singles_rate
    );
    println!(
        "| one batch of {} | {:.1} | {:.2}× | {} | {} | {} | {:.0} of {} |",
        b.count,
        b.rate,
        b.rate / b.singles_rate,
        ms(b.accepted),
        ms(b.first_webhook),
        ms(b.batch_webhook),
        b.grouped,
        b.count
    );
    println!("\nCPU milliseconds per document, by part of the stack:\n");
    println!("| part | single async jobs | in the batch |");
    println!("|---|---|---|");
    for (part, singles, batch) in &b.cpu {
        println!("| {part} | {singles:.1} | {batch:.1} |");
    }
}

fn report(args: &Args, results: &[Run], idles: &[(&str, Idle)]) {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!(
        "## Whole stack: {}, {} tab(s), release renderer; {}, {}",
        args.input.display(),
        args.tabs,
        revision(),
        std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    );
    println!();
    println!(
        "| mode | jobs × clients | renderer alone | async jobs/s | × renderer alone | submit→202 p50 / p95 | submit→webhook p50 / p95 |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in results {
        println!(
            "| {} | {} × {} | {:.1} PDF/s | {:.1} | {:.2}× | {} / {} | {} / {} |",
            r.mode,
            r.jobs,
            r.clients,
            r.alone,
            r.rate,
            r.rate / r.alone,
            ms(r.accepted.0),
            ms(r.accepted.1),
            secs(r.webhook.0),
            secs(r.webhook.1)
        );
    }
    println!();
    println!("Where an async job's time goes (means per job):");
    println!();
    println!(
        "| mode | jobs × clients | queued before the renderer | in the renderer | of which render | upload | the rest (spec, events) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in results {
        let [job, render, upload] = [r.in_renderer[0], r.in_renderer[1], r.in_renderer[2]];
        println!(
            "| {} | {} × {} | {:.2} s | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |",
            r.mode,
            r.jobs,
            r.clients,
            r.queue_secs,
            job * 1e3,
            render * 1e3,
            upload * 1e3,
            (job - render - upload) * 1e3
        );
    }
    println!();
    println!(
        "CPU per async job, by part of the stack (ms), and the rate that much CPU allows on this \
         machine's {} cores (cores × 1000 ms / total):",
        cores()
    );
    println!();
    let parts: std::collections::BTreeSet<&String> =
        results.iter().flat_map(|r| r.cpu_per_job.keys()).collect();
    println!(
        "| mode | jobs × clients | {} | total | CPU-bound rate | async jobs/s / that rate |",
        parts.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" | ")
    );
    println!("|---|---|{}---|---|---|", "---|".repeat(parts.len()));
    for r in results {
        let cells: Vec<String> = parts
            .iter()
            .map(|p| format!("{:.0}", r.cpu_per_job.get(*p).copied().unwrap_or(0.0)))
            .collect();
        let total = r.cpu_per_job.values().sum::<f64>();
        let bound = cores() as f64 * 1e3 / total.max(1.0);
        println!(
            "| {} | {} × {} | {} | {total:.0} | {bound:.1} jobs/s | {:.2} |",
            r.mode,
            r.jobs,
            r.clients,
            cells.join(" | "),
            r.rate / bound
        );
    }
    let syncs: Vec<&Run> = results.iter().filter(|r| r.sync.is_some()).collect();
    if !syncs.is_empty() {
        println!();
        println!(
            "| sync through the edge, N renders from 2 × tabs clients | PDF/s | renderer alone (right after) | × renderer alone | p50 / p95 |"
        );
        println!("|---|---|---|---|---|");
        for r in syncs {
            let Some((rate, alone, p50, p95)) = r.sync else { continue };
            println!(
                "| {} | {rate:.1} | {alone:.1} PDF/s | {:.2}× | {} / {} |",
                r.jobs,
                rate / alone,
                ms(p50),
                ms(p95)
            );
        }
    }
    println!();
    println!("Idle stack, one request at a time ({} each), p50:", args.idle);
    println!();
    println!(
        "| mode | renderer alone, /render | sync POST /pdf | edge adds | async: render | async: submit→webhook | webhook − render |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (mode, i) in idles {
        let (sync, adds) = match i.sync_edge {
            Some(s) => (ms(s), ms(s.saturating_sub(i.render_alone))),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {mode} | {} | {sync} | {adds} | {} | {} | {} |",
            ms(i.render_alone),
            ms(i.async_render),
            ms(i.async_webhook),
            ms(i.async_webhook.saturating_sub(i.async_render))
        );
    }
    println!();
    println!("What one request costs the local edge in CPU (ms, 200 requests one at a time):");
    println!();
    println!(
        "| mode | GET / (no KV): workerd / node | GET /jobs/{{id}} (6 KV reads): workerd / node |"
    );
    println!("|---|---|---|");
    for (mode, i) in idles {
        println!(
            "| {mode} | {:.1} / {:.1} | {:.1} / {:.1} |",
            i.cpu_index.0, i.cpu_index.1, i.cpu_job.0, i.cpu_job.1
        );
    }
}
