//! Renderers scale out: three in pull mode share one queue (the Queues pull stand-in) behind
//! the whole stack (wrangler dev, s3s-fs, a webhook receiver), and one SIGKILLed mid-run loses
//! nothing: the jobs it held come back once their lease passes and complete, one webhook each.
//! In push mode the Worker spreads jobs and sync renders over the renderers `RENDERER_URL`
//! lists, and skips one that does not answer.
//!
//! The figures are printed (BENCHMARKS.md, "Scaling out"); what is asserted is what must hold
//! on any machine: every job completes once, the killed renderer's jobs were delivered again,
//! and each renderer did a fair part of the work while the queue had some (none idles). On a
//! 2-core machine three renderers cannot be faster than one: the ratio shows the cost of
//! sharing the cores, CPU per job shows that nothing is wasted.
#![allow(clippy::unwrap_used)]

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::json;
use tailpdf_e2e::{
    client::{client, send},
    process::cpu_seconds,
    small_invoice,
    stack::{wait_until, Renderer, Settings, Stack, API_KEY},
};

/// Jobs with three renderers, in two runs of half (the second with a renderer killed); a run
/// of as many with one renderer is the baseline, in the same test.
const JOBS: usize = 600;
const CLIENTS: usize = 20;
/// The lease of a pulled job: short, so that the killed renderer's jobs come back soon.
const LEASE_SECS: u64 = 20;

/// Submits `n` async jobs named `{run}-{i}` from [`CLIENTS`] clients at once; their ids.
async fn submit(stack: &Stack, run: &str, n: usize) -> Vec<String> {
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let jobs: Vec<(usize, String)> = (c..n)
            .step_by(CLIENTS)
            .map(|i| (i, stack.bucket.upload_url(&format!("{run}/{i}.pdf"))))
            .collect();
        let (edge, hook) = (stack.edge.url.clone(), stack.receiver.url.clone());
        clients.spawn(async move {
            let mut ids = Vec::new();
            for (i, upload_url) in jobs {
                let body = json!({
                    "content": small_invoice(i, "Scale"), "pdfOptions": {"format": "A4"},
                    "async": true, "upload_url": upload_url, "webhook_url": hook,
                });
                let post = client().post(format!("{edge}/pdf")).header("X-API-Key", API_KEY);
                let reply = send(post.json(&body)).await;
                assert_eq!(reply.status, 202, "{}", reply.text());
                ids.push(reply.json()["job_id"].as_str().unwrap().to_owned());
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(done) = clients.join_next().await {
        ids.extend(done.unwrap());
    }
    ids
}

/// Webhooks received so far for `ids`.
fn webhooks_of(stack: &Stack, ids: &HashSet<String>) -> usize {
    stack
        .receiver
        .all()
        .iter()
        .filter(|d| d.json()["job_id"].as_str().is_some_and(|id| ids.contains(id)))
        .count()
}

/// Jobs a renderer completed, by its `/metrics`.
async fn completed(renderer: &Renderer) -> u64 {
    let text = renderer.metrics().await;
    text.lines()
        .find_map(|l| l.strip_prefix("tailpdf_jobs_total{outcome=\"completed\"} "))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// CPU seconds the whole machine has spent, all cores (/proc/stat, in clock ticks).
fn machine_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|v| v.parse().unwrap())
        .collect();
    // user, nice, system, idle, iowait, irq, softirq, steal: all but idle and iowait.
    (cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6] + cpu[7]) / procfs::ticks_per_second() as f64
}

/// One run of `n` jobs through `renderers`: submitted at once, timed to their last webhook.
struct Run {
    rate: f64,
    /// CPU seconds a job took in the renderers (and their Chromiums), and on the machine.
    renderer_cpu: f64,
    machine_cpu: f64,
    /// Jobs each renderer completed.
    done: Vec<u64>,
}

async fn run(stack: &Stack, renderers: &[&Renderer], name: &str, n: usize) -> Run {
    let mut done_before = Vec::new();
    let mut cpu_before = 0.0;
    for r in renderers {
        done_before.push(completed(r).await);
        cpu_before += cpu_seconds(&r.pids());
    }
    let machine_before = machine_cpu();
    let started = Instant::now();
    let ids: HashSet<String> = submit(stack, name, n).await.into_iter().collect();
    wait_until(name, Duration::from_secs(300), async || webhooks_of(stack, &ids) >= n).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    let machine = machine_cpu() - machine_before;
    let mut done = Vec::new();
    let mut cpu = -cpu_before;
    for (r, before) in renderers.iter().zip(done_before) {
        done.push(completed(r).await - before);
        cpu += cpu_seconds(&r.pids());
    }
    Run { rate, renderer_cpu: cpu / n as f64, machine_cpu: machine / n as f64, done }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pull_renderers_share_a_queue_and_a_killed_one_loses_nothing() {
    let lease = format!("{LEASE_SECS}s");
    let mut stack = Stack::start(Settings {
        pull: true,
        renderers: 3,
        renderer_env: vec![("TAILPDF_VISIBILITY_TIMEOUT".into(), lease)],
        ..Settings::default()
    })
    .await;
    let per_run = JOBS / 2;

    // One renderer: the others stopped as an orchestrator stops them.
    for other in &mut stack.others {
        other.stop();
    }
    let one = run(&stack, &[&stack.renderer], "one", per_run).await;

    // Three renderers on the same queue.
    for other in &mut stack.others {
        other.restart().await;
    }
    let all: Vec<&Renderer> = std::iter::once(&stack.renderer).chain(&stack.others).collect();
    let three = run(&stack, &all, "three", per_run).await;
    // None idled while the queue had work: each did a fair part.
    for (i, n) in three.done.iter().enumerate() {
        assert!(*n as usize * 6 >= per_run, "renderer {i} did {n} of {per_run}: {:?}", three.done);
    }

    // Again, and the third SIGKILLed once a third of the jobs ended.
    let started = Instant::now();
    let ids: HashSet<String> = submit(&stack, "killed", per_run).await.into_iter().collect();
    wait_until("a third of the jobs", Duration::from_secs(300), async || {
        webhooks_of(&stack, &ids) >= per_run / 3
    })
    .await;
    let (at_kill, ended_at_kill) = (started.elapsed(), webhooks_of(&stack, &ids));
    stack.others[1].kill_hard();
    // Every job ends once: the killed renderer's leased jobs come back after the lease.
    wait_until("every webhook", Duration::from_secs(300 + LEASE_SECS), async || {
        webhooks_of(&stack, &ids) >= per_run
    })
    .await;
    let all_done = started.elapsed();
    // A job the killed renderer ended but had not acknowledged yet comes back once its lease
    // passes; another renderer then finds it ended and acknowledges it, sending nothing.
    let queue = stack.queue.as_ref().unwrap();
    wait_until("an empty queue", Duration::from_secs(LEASE_SECS + 60), async || {
        queue.pending().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut per_job: HashMap<String, usize> = HashMap::new();
    for d in stack.receiver.all() {
        let id = d.json()["job_id"].as_str().unwrap().to_owned();
        if ids.contains(&id) {
            assert_eq!(d.header("x-tailpdf-event"), "render.completed", "{id}: {}", d.json());
            *per_job.entry(id).or_default() += 1;
        }
    }
    assert_eq!(per_job.len(), per_run, "every job ended");
    let twice: Vec<_> = per_job.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "duplicate webhooks: {twice:?}");
    for run in ["one", "three", "killed"] {
        let objects =
            stack.bucket.objects().iter().filter(|k| k.starts_with(&format!("{run}/"))).count();
        assert_eq!(objects, per_run, "one PDF per job of {run}");
    }
    assert!(queue.pending().is_empty(), "left in the queue: {:?}", queue.pending());
    let again = queue.deliveries().iter().filter(|(_, attempt)| *attempt > 1).count();
    assert!(again >= 1, "the killed renderer held no job: it was killed idle");

    eprintln!(
        "scale (pull, {per_run} jobs a run, {CLIENTS} clients): one renderer {:.1} jobs/s, \
         {:.3} CPU s/job in the renderer, {:.3} on the machine; three renderers {:.1} jobs/s = \
         {:.2}x, {:.3} CPU s/job in the renderers = {:.2}x, {:.3} on the machine, jobs each \
         {:?}; then {per_run} more with the third SIGKILLed at {at_kill:.1?} ({ended_at_kill} \
         ended): {again} delivered again after the {LEASE_SECS}-s lease, all ended at \
         {all_done:.1?}, 0 lost, 0 duplicate webhooks",
        one.rate,
        one.renderer_cpu,
        one.machine_cpu,
        three.rate,
        three.rate / one.rate,
        three.renderer_cpu,
        three.renderer_cpu / one.renderer_cpu,
        three.machine_cpu,
        three.done,
    );
}

/// Two renderers behind `RENDERER_URL`: jobs and sync renders spread over both; with one
/// SIGKILLed, everything still completes on the other (the dead one skipped), once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_spreads_jobs_over_its_renderers_and_skips_one_that_does_not_answer() {
    let mut stack = Stack::start(Settings { renderers: 2, ..Settings::default() }).await;
    let sync = async |stack: &Stack, n: usize| {
        for i in 0..n {
            let body =
                json!({"content": small_invoice(i, "Scale"), "pdfOptions": {"format": "A4"}});
            let post =
                client().post(format!("{}/pdf", stack.edge.url)).header("X-API-Key", API_KEY);
            let reply = send(post.json(&body)).await;
            assert_eq!(reply.status, 200, "sync render {i}: {}", reply.text());
            assert!(reply.body.starts_with(b"%PDF-"));
        }
    };
    let before = [completed(&stack.renderer).await, completed(&stack.others[0]).await];
    let ids: HashSet<String> = submit(&stack, "both", 40).await.into_iter().collect();
    wait_until("the jobs' webhooks", Duration::from_secs(180), async || {
        webhooks_of(&stack, &ids) >= ids.len()
    })
    .await;
    sync(&stack, 6).await;
    let done = [
        completed(&stack.renderer).await - before[0],
        completed(&stack.others[0]).await - before[1],
    ];
    assert_eq!(done.iter().sum::<u64>(), 40, "{done:?}");
    assert!(done.iter().all(|n| *n >= 8), "both renderers took jobs: {done:?}");

    // One renderer gone: every job and sync render still goes through, on the other. First
    // the Worker's last questions about the jobs that ended (every PUSH_CHECK_SECS) are
    // answered, so that none is left for a renderer that is gone.
    tokio::time::sleep(Duration::from_secs(5)).await;
    stack.others[0].kill_hard();
    let survivor = completed(&stack.renderer).await;
    let gone: HashSet<String> = submit(&stack, "one-gone", 20).await.into_iter().collect();
    sync(&stack, 6).await;
    wait_until("the jobs' webhooks with a renderer gone", Duration::from_secs(180), async || {
        webhooks_of(&stack, &gone) >= gone.len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(completed(&stack.renderer).await - survivor, 20, "all on the survivor");
    let mut per_job: HashMap<String, usize> = HashMap::new();
    for d in stack.receiver.all() {
        let id = d.json()["job_id"].as_str().unwrap().to_owned();
        if ids.contains(&id) || gone.contains(&id) {
            assert_eq!(d.header("x-tailpdf-event"), "render.completed", "{id}");
            *per_job.entry(id).or_default() += 1;
        }
    }
    assert_eq!(per_job.len(), 60);
    assert!(per_job.values().all(|n| *n == 1), "one webhook per job");
    eprintln!(
        "push over two renderers: 40 jobs split {done:?}; with one SIGKILLed, 20 jobs and 6 \
         sync renders all on the other"
    );
}
