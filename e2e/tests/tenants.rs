//! Two accounts on one stack (wrangler dev, the renderer with Chromium): neither can restyle
//! the other's documents nor crowd them out, through the public API.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tailpdf_e2e::{
    client::{get_job, post_pdf_raw, submit, Reply},
    contract::Contract,
    pdf::{coloured_pixels, raster},
    stack::{Settings, Stack, API_KEY},
};

const MALLORY_KEY: &str = "e2e-mallory-key";

async fn stack() -> Stack {
    let accounts = vec![(MALLORY_KEY.to_owned(), String::from("mallory"))];
    Stack::start(Settings { accounts, ..Settings::default() }).await
}

async fn sync(
    stack: &Stack,
    contract: &Contract,
    key: &str,
    no_store: bool,
    body: &Value,
) -> Reply {
    let mut headers = vec![("X-API-Key", key)];
    if no_store {
        headers.push(("X-No-Store", "true"));
    }
    post_pdf_raw(stack, contract, &headers, body.to_string().into_bytes()).await
}

/// The class names of the project's invoice, as the renderer reads them.
fn invoice_classes(html: &str) -> BTreeSet<String> {
    html.split("class=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .flat_map(|value| value.split_ascii_whitespace().map(str::to_owned))
        .collect()
}

/// The adversarial round's attack: one class name holding NULs, shaped like the victim's whole
/// class list, sent before the victim's document: the Tailwind CSS made for it (none) was
/// memoized under the victim's key, and the victim's invoices came back unstyled, with or
/// without `X-No-Store`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_account_can_restyle_another_s_documents() {
    let contract = Contract::load();
    let stack = stack().await;
    let invoice = include_str!("../../examples/invoice.html");
    let classes: Vec<String> = invoice_classes(invoice).into_iter().collect();
    let attack = format!("<p class=\"{}\">x</p>", classes.join("\u{0}"));
    let attacker = json!({"content": attack, "pdfOptions": {"format": "A4"}});
    let r = sync(&stack, &contract, MALLORY_KEY, false, &attacker).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let body = json!({"content": invoice, "pdfOptions": {"format": "A4", "printBackground": true}});
    let victim = sync(&stack, &contract, API_KEY, false, &body).await;
    assert_eq!(victim.status, 200, "{}", victim.text());
    let styled = raster(&victim.body, 30);
    // Unstyled, the invoice is black text on white; styled, it has its teal badge and totals.
    assert!(coloured_pixels(&styled) > 50, "the victim's invoice came back unstyled");
    let again = sync(&stack, &contract, API_KEY, true, &body).await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(raster(&again.body, 30) == styled, "the same invoice with X-No-Store looks the same");
}

/// The SVG filters on an A0 page that keep a tab busy until the 30-s render deadline.
fn costly(extra: Value) -> Value {
    let mut body = json!({"content": "<svg width=\"3000\" height=\"4000\"><filter id=\"f\">\
        <feTurbulence baseFrequency=\"0.01\" numOctaves=\"8\"/><feGaussianBlur stdDeviation=\"40\"/>\
        <feMorphology radius=\"30\"/></filter><rect width=\"3000\" height=\"4000\" filter=\"url(#f)\"/></svg>",
        "pdfOptions": {"format": "A0"}});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body
}

fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

/// Waits until `mallory`'s renders hold `n` tabs at least.
async fn tabs_busy(stack: &Stack, n: usize) {
    let started = Instant::now();
    let busy = |metrics: String| {
        metrics.lines().find_map(|l| l.strip_prefix("tailpdf_tabs_busy ")?.parse::<usize>().ok())
    };
    while busy(stack.renderer.metrics().await).is_none_or(|busy| busy < n) {
        assert!(started.elapsed() < Duration::from_secs(15), "mallory never held {n} tabs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// While `mallory`'s async jobs keep both tabs busy until the 30-s deadline (and more of them
/// wait), the e2e account's async invoices, pushed by the Worker's `render-jobs` consumer,
/// complete within twice their time alone plus one render of theirs. The consumer once held
/// each delivery until its jobs ended, so an invoice queued behind mallory's waited for them
/// (24.4 s against 0.4 s alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_account_can_crowd_out_another_s_jobs_in_push_mode() {
    let contract = Contract::load();
    let stack = stack().await;
    let invoice = include_str!("../../examples/invoice.html");
    // From `POST /pdf` to `completed` in GET /jobs, polled every 50 ms; and its render time.
    let series = async |n: usize, from: &str| {
        let (mut took, mut renders) = (Vec::new(), Vec::new());
        for i in 0..n {
            let upload = stack.bucket.upload_url(&format!("{from}-{i}.pdf"));
            let started = Instant::now();
            let id = submit(&stack, &contract, &stack.async_job(invoice, &upload)).await;
            let job = loop {
                let job = get_job(&stack, &contract, &id).await.json();
                if matches!(job["status"].as_str(), Some("completed" | "failed")) {
                    break job;
                }
                assert!(started.elapsed() < Duration::from_secs(90), "{id} never ended: {job}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            took.push(started.elapsed());
            assert_eq!(job["status"], "completed", "{job}");
            renders
                .push(Duration::from_millis(job["result"]["render_duration_ms"].as_u64().unwrap()));
        }
        (took, renders)
    };
    series(1, "warm").await;
    let (alone, renders) = series(5, "alone").await;
    let (alone, slot) = (median(alone), median(renders));

    let flooded = Instant::now();
    for i in 0..4 {
        let upload = stack.bucket.upload_url(&format!("mallory-{i}.pdf"));
        let body = costly(json!({"async": true, "upload_url": upload}));
        let r = sync(&stack, &contract, MALLORY_KEY, false, &body).await;
        assert_eq!(r.status, 202, "{}", r.text());
    }
    // All of mallory's jobs are taken at once: both tabs busy (its throughput is not cut).
    tabs_busy(&stack, 2).await;
    let (during, _) = series(5, "during").await;
    assert!(flooded.elapsed() < Duration::from_secs(30), "measured while mallory held the tabs");
    let (mid, worst) = (median(during.clone()), *during.iter().max().unwrap());
    let bound = alone * 2 + slot;
    println!(
        "push-mode fairness through the edge: alone {alone:?} (render {slot:?}), during \
         mallory's flood median {mid:?} worst {worst:?}, bound {bound:?}"
    );
    assert!(mid <= bound, "waited {mid:?} against {bound:?}");
    assert!(worst <= bound * 2, "one invoice took {worst:?}");
}

/// While `mallory` keeps both tabs busy with sync renders that run into the 30-s deadline,
/// the e2e account's invoices through the edge take no more than twice their time alone plus
/// one render of theirs: the edge tells the renderer whose each render is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_account_can_crowd_out_another_s_sync_renders() {
    let contract = std::sync::Arc::new(Contract::load());
    let stack = std::sync::Arc::new(stack().await);
    let invoice = json!({"content": include_str!("../../examples/invoice.html"),
        "pdfOptions": {"format": "A4", "printBackground": true}});
    let costly = costly(json!({}));
    let series = |n: usize| {
        let (stack, contract, invoice) = (stack.clone(), contract.clone(), invoice.clone());
        async move {
            let mut took = Vec::new();
            let mut renders = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                let r = sync(&stack, &contract, API_KEY, false, &invoice).await;
                assert_eq!(r.status, 200, "{}", r.text());
                took.push(started.elapsed());
                let ms: u64 = r.header("x-render-duration-ms").unwrap().parse().unwrap();
                renders.push(Duration::from_millis(ms));
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            (took, renders)
        }
    };
    series(1).await;
    let (alone, renders) = series(5).await;
    let (alone, slot) = (median(alone), median(renders));

    let flooded = Instant::now();
    let floods: Vec<_> = (0..2)
        .map(|_| {
            let (stack, contract, costly) = (stack.clone(), contract.clone(), costly.clone());
            tokio::spawn(async move { sync(&stack, &contract, MALLORY_KEY, false, &costly).await })
        })
        .collect();
    tabs_busy(&stack, 2).await;
    let (during, _) = series(5).await;
    assert!(flooded.elapsed() < Duration::from_secs(30), "measured while mallory held the tabs");
    for flood in floods {
        let r = flood.await.unwrap();
        assert_eq!(r.status, 500, "{}", r.text());
        assert_eq!(r.json()["error"], "render_failed");
    }
    let (mid, worst) = (median(during.clone()), *during.iter().max().unwrap());
    let bound = alone * 2 + slot;
    println!(
        "fairness through the edge: alone {alone:?} (render {slot:?}), during mallory's flood \
         median {mid:?} worst {worst:?}, bound {bound:?}"
    );
    assert!(mid <= bound, "waited {mid:?} against {bound:?}");
    assert!(worst <= bound * 2, "one invoice took {worst:?}");
}
