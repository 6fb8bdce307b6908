//! Faults injected into the whole stack (wrangler dev in push mode, the renderer, s3s-fs,
//! webhook receivers): Chromium killed mid-render, the bucket down for 20 s, a webhook
//! receiver that fails, then times out, then accepts. Every job must end completed, with one
//! object and one accepted webhook per `webhook-id`; the figures are printed.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tailpdf_e2e::{
    client::{ended, submit},
    contract::Contract,
    process::descendants,
    servers::{Answer, HeldImage, HoldingProxy, ScriptedReceiver},
    stack::{wait_until, Settings, Stack},
};

fn job(stack: &Stack, content: &str, key: &str, webhook_url: &str) -> Value {
    json!({"content": content, "async": true, "upload_url": stack.bucket.upload_url(key),
        "webhook_url": webhook_url})
}

/// The job completed and its object is the PDF it reports.
async fn completed(stack: &Stack, contract: &Contract, id: &str, key: &str) -> Value {
    let view = ended(stack, contract, id, Duration::from_secs(120)).await;
    assert_eq!(view["status"], "completed", "{view}\n{}", stack.renderer.log());
    let object = stack.bucket.object(key).unwrap_or_else(|| panic!("no object {key}"));
    assert_eq!(view["result"]["file_size_bytes"], object.len(), "{view}");
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_faults_with_one_object_and_one_webhook_each() {
    let mut stack = Stack::start(Settings::default()).await;
    let contract = Contract::load();
    let mut figures = Vec::new();

    // Chromium killed mid-render: the render fails as retryable, the job comes back as
    // delivery 2 and completes.
    let image = HeldImage::start().await;
    let hooks = ScriptedReceiver::start(&[]).await;
    let content = format!(r#"<img src="{}"><p>Chromium died</p>"#, image.url);
    let started = Instant::now();
    let crashed =
        submit(&stack, &contract, &job(&stack, &content, "chromium.pdf", &hooks.url)).await;
    wait_until("the render to start", Duration::from_secs(60), async || image.hits() > 0).await;
    let chromium = descendants(stack.renderer.pid());
    assert!(!chromium.is_empty(), "the renderer runs Chromium");
    for pid in &chromium {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    completed(&stack, &contract, &crashed, "chromium.pdf").await;
    assert!(image.hits() >= 2, "rendered again");
    assert!(stack.renderer.log().contains("\"attempt\":2"), "as the job's second delivery");
    figures.push(format!("Chromium killed mid-render: completed in {:?}", started.elapsed()));

    // The bucket down for 20 s: the upload is retried within its budget (60 s) and lands once
    // the bucket is back.
    stack.bucket.stop();
    let started = Instant::now();
    let stored =
        submit(&stack, &contract, &job(&stack, "<p>Bucket down</p>", "bucket.pdf", &hooks.url))
            .await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let early = tailpdf_e2e::client::get_job(&stack, &contract, &stored).await.json();
    assert_eq!(early["status"], "uploading", "still trying: {early}");
    stack.bucket.start_again().await;
    completed(&stack, &contract, &stored, "bucket.pdf").await;
    figures.push(format!("bucket down 20 s: completed in {:?}", started.elapsed()));

    // The receiver answers 500, then never (the edge's 5 s deadline), then 200: three
    // deliveries of one webhook-id, accepted once.
    let flaky = ScriptedReceiver::start(&[Answer::Status(500), Answer::Hang]).await;
    let started = Instant::now();
    let hooked =
        submit(&stack, &contract, &job(&stack, "<p>Receiver</p>", "receiver.pdf", &flaky.url))
            .await;
    completed(&stack, &contract, &hooked, "receiver.pdf").await;
    wait_until("the third delivery", Duration::from_secs(60), async || {
        flaky.deliveries().len() >= 3
    })
    .await;
    let deliveries = flaky.deliveries();
    let answers: Vec<Answer> = deliveries.iter().map(|(_, a)| *a).collect();
    assert_eq!(answers, [Answer::Status(500), Answer::Hang, Answer::Status(200)]);
    assert!(deliveries.iter().all(|(id, _)| *id == format!("msg_{hooked}_completed")));
    wait_until("the delivery to be recorded", Duration::from_secs(10), async || {
        let view = tailpdf_e2e::client::get_job(&stack, &contract, &hooked).await.json();
        view["webhook"]["attempts"] == 3 && view["webhook"]["last_status"] == 200
    })
    .await;
    figures.push(format!("receiver 500, timeout, 200: delivered in {:?}", started.elapsed()));

    // Nothing lost, nothing twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.bucket.objects(), ["bucket.pdf", "chromium.pdf", "receiver.pdf"]);
    for id in [&crashed, &stored] {
        let ids: Vec<String> = hooks.deliveries().into_iter().map(|(id, _)| id).collect();
        assert_eq!(
            ids.iter().filter(|w| **w == format!("msg_{id}_completed")).count(),
            1,
            "{id}: {ids:?}"
        );
    }
    let duplicates = hooks.accepted_duplicates() + flaky.accepted_duplicates();
    assert_eq!(duplicates, 0, "webhook-ids accepted twice");
    figures.push(format!("duplicate webhook-ids accepted: {duplicates}"));
    eprintln!("faults:\n  {}", figures.join("\n  "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_the_edge_restarting_mid_render() {
    let mut stack = Stack::start(Settings::default()).await;
    let contract = Contract::load();
    let image = HeldImage::start().await;
    let hooks = ScriptedReceiver::start(&[]).await;
    let content = format!(r#"<img src="{}"><p>Edge restarted</p>"#, image.url);
    let started = Instant::now();
    let id = submit(&stack, &contract, &job(&stack, &content, "edge.pdf", &hooks.url)).await;
    wait_until("the render to start", Duration::from_secs(60), async || image.hits() > 0).await;
    // wrangler dev dies (SIGKILL, workerd and all) while the job is being rendered, and comes
    // back with its persisted state.
    stack.edge.restart().await;
    completed(&stack, &contract, &id, "edge.pdf").await;
    wait_until("the webhook", Duration::from_secs(30), async || !hooks.deliveries().is_empty())
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.bucket.objects(), ["edge.pdf"]);
    assert_eq!(hooks.accepted_duplicates(), 0);
    eprintln!("edge restarted mid-render: completed in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_killed_mid_upload_loses_nothing() {
    let mut stack = Stack::start(Settings::default()).await;
    let contract = Contract::load();
    let hooks = ScriptedReceiver::start(&[]).await;
    // The first upload's connection is held: the renderer is mid-upload when it is killed.
    let proxy = HoldingProxy::start(stack.bucket.addr()).await;
    let upload_url = stack.bucket.upload_url_via(&format!("http://{}", proxy.addr), "upload.pdf");
    let body = json!({"content": "<p>Killed mid-upload</p>", "async": true,
        "upload_url": upload_url, "webhook_url": hooks.url});
    let started = Instant::now();
    let id = submit(&stack, &contract, &body).await;
    wait_until("the upload to start", Duration::from_secs(60), async || proxy.connections() > 0)
        .await;
    let view = tailpdf_e2e::client::get_job(&stack, &contract, &id).await.json();
    assert_eq!(view["status"], "uploading", "{view}");
    stack.renderer.kill_hard();
    stack.renderer.restart().await;
    // Delivered again by the edge, rendered again, uploaded through a connection that passes.
    completed(&stack, &contract, &id, "upload.pdf").await;
    wait_until("the webhook", Duration::from_secs(30), async || !hooks.deliveries().is_empty())
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.bucket.objects(), ["upload.pdf"], "one object");
    let ids: Vec<String> = hooks.deliveries().into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, [format!("msg_{id}_completed")], "one webhook");
    eprintln!("renderer killed mid-upload: completed in {:?}", started.elapsed());
}
