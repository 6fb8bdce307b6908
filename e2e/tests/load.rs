//! 500 async jobs from 50 concurrent clients through the local stack (wrangler dev, the debug
//! renderer with 2 tabs, s3s-fs, a webhook receiver): every job completes, 500 objects, 500
//! webhooks that verify, no duplicates. Run twice: in push mode, where Miniflare's local
//! consumer hands the renderer a batch at a time (wrangler.toml), and in pull mode, where the
//! renderer pulls from the Queues pull stand-in as much as it has room for. The figures are
//! printed; nothing here asserts a speed (`make bench-stack` measures, BENCHMARKS.md).
#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::json;
use tailpdf_e2e::{
    client::{client, internal, send},
    now, percentile, queues, small_invoice,
    stack::{wait_until, Settings, Stack, API_KEY, WEBHOOK_SECRET},
};
use tailpdf_shared::signing::{verify_tailpdf_signature, StandardWebhookKey};

const JOBS: usize = 500;
const CLIENTS: usize = 50;

/// The baseline, measured in the same run: the renderer alone, 40 sync renders of the same
/// documents from 2 clients (its 2 tabs), called directly with the internal signature.
async fn renderer_pdfs_per_second(renderer: &str) -> f64 {
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..2 {
        let renderer = renderer.to_owned();
        clients.spawn(async move {
            for k in 0..20 {
                let spec = json!({"content": small_invoice(c * 20 + k, "Load"),
                    "pdfOptions": {"format": "A4", "printBackground": true}});
                let body = serde_json::to_vec(&spec).unwrap();
                let reply = internal(&renderer, reqwest::Method::POST, "/render", body).await;
                assert_eq!(reply.status, 200);
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    40.0 / started.elapsed().as_secs_f64()
}

/// One test, so that the two runs never share the machine: push mode, then pull mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_jobs_from_fifty_clients_in_push_then_pull_mode() {
    five_hundred_jobs_from_fifty_clients(false).await;
    five_hundred_jobs_from_fifty_clients(true).await;
}

async fn five_hundred_jobs_from_fifty_clients(pull: bool) {
    let stack = Stack::start(Settings { pull, ..Settings::default() }).await;
    let baseline = renderer_pdfs_per_second(&stack.renderer.url).await;
    let edge = stack.edge.url.clone();
    let hook = stack.receiver.url.clone();
    // How many jobs the renderer runs at once, sampled: what the local queue consumer allows;
    // and in pull mode the queue's backlog as the renderer serves it to an autoscaler.
    let samples: Arc<Mutex<Vec<u32>>> = Arc::default();
    let backlogs: Arc<Mutex<Vec<u64>>> = Arc::default();
    let metrics = format!("{}/metrics", stack.renderer.url);
    let backlog_of = |text: &str| {
        let prefix = format!("tailpdf_queue_backlog_messages{{queue=\"{}\"}} ", queues::QUEUE_ID);
        text.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<u64>().ok())
    };
    let sampler = tokio::spawn({
        let (metrics, samples, backlogs) = (metrics.clone(), samples.clone(), backlogs.clone());
        async move {
            loop {
                let text = send(client().get(&metrics)).await.text();
                let running = text
                    .lines()
                    .find_map(|l| l.strip_prefix("tailpdf_jobs_in_flight "))
                    .and_then(|v| v.trim().parse::<u32>().ok());
                samples.lock().unwrap().extend(running);
                backlogs.lock().unwrap().extend(backlog_of(&text));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let urls: Vec<(usize, String)> = (0..JOBS / CLIENTS)
            .map(|k| {
                let n = c * (JOBS / CLIENTS) + k;
                (n, stack.bucket.upload_url(&format!("load/{n}.pdf")))
            })
            .collect();
        let (edge, hook) = (edge.clone(), hook.clone());
        clients.spawn(async move {
            let mut submitted = Vec::new();
            for (n, upload_url) in urls {
                let body = json!({
                    "content": small_invoice(n, "Load"),
                    "pdfOptions": {"format": "A4", "printBackground": true},
                    "async": true, "upload_url": upload_url, "webhook_url": hook,
                });
                let at = Instant::now();
                let reply = send(
                    client().post(format!("{edge}/pdf")).header("X-API-Key", API_KEY).json(&body),
                )
                .await;
                assert_eq!(reply.status, 202, "{}", reply.text());
                let id = reply.json()["job_id"].as_str().unwrap().to_owned();
                submitted.push((id, n, at, at.elapsed()));
            }
            submitted
        });
    }
    let mut jobs = Vec::new();
    while let Some(done) = clients.join_next().await {
        jobs.extend(done.unwrap());
    }
    assert_eq!(jobs.len(), JOBS);
    wait_until("every webhook", Duration::from_secs(900), async || {
        stack.receiver.all().len() >= JOBS
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let elapsed = started.elapsed();
    sampler.abort();
    let samples = samples.lock().unwrap().clone();
    let busy: Vec<u32> = samples.iter().copied().filter(|n| *n > 0).collect();
    let mean = busy.iter().sum::<u32>() as f64 / busy.len().max(1) as f64;
    let most = busy.iter().max().copied().unwrap_or(0);

    // One verified webhook per job, render.completed, and one object each.
    let deliveries = stack.receiver.all();
    assert_eq!(deliveries.len(), JOBS, "no duplicates");
    let key = StandardWebhookKey::from_secret(WEBHOOK_SECRET);
    let mut arrived: HashMap<String, Instant> = HashMap::new();
    for d in &deliveries {
        let job = d.json()["job_id"].as_str().unwrap().to_owned();
        assert_eq!(d.header("x-tailpdf-event"), "render.completed", "{job}");
        let signature = d.header("x-tailpdf-signature");
        assert!(verify_tailpdf_signature(WEBHOOK_SECRET, &d.body, signature).is_ok());
        let (wid, wts) = (d.header("webhook-id"), d.header("webhook-timestamp"));
        assert!(key.verify(wid, wts, d.header("webhook-signature"), &d.body, now()).is_ok());
        assert!(arrived.insert(job, d.at).is_none(), "a second webhook for one job");
    }
    assert_eq!(stack.bucket.objects().len(), JOBS);
    let mode = if let Some(queue) = &stack.queue {
        // Every message acknowledged once its job ended, none left behind.
        assert_eq!(queue.acked().len(), JOBS);
        assert!(queue.pending().is_empty(), "{:?}", queue.pending());
        let again = queue.deliveries().len() - JOBS;
        // The backlog the queue's answers reported: jobs waiting while the load lasted, none
        // once every message was acknowledged.
        let most = backlogs.lock().unwrap().iter().copied().max().unwrap_or(0);
        assert!(most >= 50, "the renderer's /metrics showed a backlog of {most} at most");
        let last = backlog_of(&send(client().get(&metrics)).await.text());
        assert_eq!(last, Some(0), "the backlog after the last ack");
        format!("pull mode, {again} messages delivered again, a backlog of {most} at most")
    } else {
        String::from("push mode")
    };

    let to_accepted: Vec<Duration> = jobs.iter().map(|j| j.3).collect();
    let to_webhook: Vec<Duration> =
        jobs.iter().map(|(id, _, at, _)| arrived[id].duration_since(*at)).collect();
    let rate = JOBS as f64 / elapsed.as_secs_f64();
    eprintln!(
        "load ({mode}): {JOBS} jobs from {CLIENTS} clients in {elapsed:.1?}: {rate:.2} jobs/s, {:.2}× the \
         renderer alone ({baseline:.2} PDF/s); submit→202 p50 {:?} p95 {:?}; submit→webhook p50 \
         {:.1?} p95 {:.1?}; jobs running at once in the renderer: mean {mean:.2}, at most {most}",
        rate / baseline,
        percentile(&to_accepted, 0.5),
        percentile(&to_accepted, 0.95),
        percentile(&to_webhook, 0.5),
        percentile(&to_webhook, 0.95),
    );
}
