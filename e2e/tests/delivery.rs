//! Delivery over the whole stack (wrangler dev in push mode, the renderer, s3s-fs, a webhook
//! receiver): attempts are counted, so a renderer's `--max-attempts` applies, and a failure
//! ends the job with its own cause; a failure no retry can mend ends it at once.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tailpdf_e2e::{
    client::{ended, get_job, internal, submit},
    contract::Contract,
    fonts::FontsApi,
    now,
    servers::HeldImage,
    stack::{wait_until, Settings, Stack},
};
use tailpdf_shared::{job::RenderResult, JobEvent, Timestamp};

fn job(stack: &Stack, font: &str, key: &str) -> Value {
    json!({"content": "<p class=\"font-sans\">x</p>", "fonts": [font], "async": true,
        "upload_url": stack.bucket.upload_url(key), "webhook_url": stack.receiver.url})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_as_counted_and_end_with_their_cause() {
    let fonts = FontsApi::start().await;
    let settings = Settings { fonts_api_base: Some(fonts.base.clone()), ..Settings::default() };
    let stack = Stack::start(settings).await;
    let contract = Contract::load();

    // The fonts API fails every time (503): each push-mode delivery carries its number, the
    // renderer retries until its --max-attempts (3), then fails the job with the real cause.
    let started = Instant::now();
    let id = submit(&stack, &contract, &job(&stack, "Unavailable Sans", "a.pdf")).await;
    let view = ended(&stack, &contract, &id, Duration::from_secs(90)).await;
    let took = started.elapsed();
    assert_eq!(view["status"], "failed", "{view}");
    let why = view["error_message"].as_str().unwrap();
    assert!(why.contains("\"Unavailable Sans\"") && why.contains("503"), "{why}");
    assert_eq!(fonts.hits(), 3, "one fonts request per delivery, three deliveries");
    let log = stack.renderer.log();
    for attempt in 1..=3 {
        assert!(log.contains(&format!("\"attempt\":{attempt}")), "delivery {attempt}:\n{log}");
    }
    assert!(!log.contains("\"attempt\":4"), "no fourth delivery");

    // A family the fonts API does not have: no retry can mend that; failed at the first try.
    let before = fonts.hits();
    let unknown = submit(&stack, &contract, &job(&stack, "Nosuchfont", "b.pdf")).await;
    let view = ended(&stack, &contract, &unknown, Duration::from_secs(30)).await;
    assert_eq!(view["status"], "failed", "{view}");
    assert!(view["error_message"].as_str().unwrap().contains("\"Nosuchfont\""), "{view}");
    assert_eq!(fonts.hits() - before, 1, "not retried");

    // Each ended with one render.failed webhook carrying that cause.
    for id in [&id, &unknown] {
        wait_until("the render.failed webhook", Duration::from_secs(20), async || {
            !stack.receiver.for_job(id).is_empty()
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for id in [&id, &unknown] {
        let hooks = stack.receiver.for_job(id);
        assert_eq!(hooks.len(), 1, "{id}");
        assert_eq!(hooks[0].header("x-tailpdf-event"), "render.failed");
    }
    assert!(stack.bucket.objects().is_empty());
    eprintln!("three deliveries and the failure took {took:?}");
}

/// An event as a renderer reports it: signed, to the edge's internal endpoint.
async fn report(stack: &Stack, id: &str, event: &JobEvent) -> u16 {
    let path = format!("/internal/jobs/{id}/events");
    let body = serde_json::to_vec(event).unwrap();
    internal(&stack.edge.url, reqwest::Method::POST, &path, body).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_ends_at_once_give_one_outcome_and_one_webhook() {
    let stack = Stack::start(Settings::default()).await;
    let contract = Contract::load();
    let image = HeldImage::start().await;
    let body = json!({"content": format!(r#"<img src="{}"><p>Raced</p>"#, image.url),
        "async": true, "upload_url": stack.bucket.upload_url("raced.pdf"),
        "webhook_url": stack.receiver.url});
    let id = submit(&stack, &contract, &body).await;
    wait_until("the render to start", Duration::from_secs(60), async || image.hits() > 0).await;
    // While the renderer is held, a `completed` and a `failed` arrive at the same moment (a
    // late end from one delivery racing the dead-letter give-up).
    let at = Timestamp::from_unix(now()).unwrap();
    let result = RenderResult { file_size_bytes: 1, render_duration_ms: 1, upload_duration_ms: 1 };
    let completed = JobEvent::Completed { at, result };
    let failed = JobEvent::Failed { at, error_message: "Render failed: raced".into() };
    let (a, b) = tokio::join!(report(&stack, &id, &completed), report(&stack, &id, &failed));
    assert_eq!((a, b), (200, 200));
    wait_until("a webhook", Duration::from_secs(30), async || {
        !stack.receiver.for_job(&id).is_empty()
    })
    .await;
    // The held render gives up on its image and reports on: the job has ended, so it stops.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let hooks = stack.receiver.for_job(&id);
    assert_eq!(hooks.len(), 1, "one webhook for the one outcome");
    let view = get_job(&stack, &contract, &id).await.json();
    assert_eq!(
        hooks[0].json()["data"]["status"],
        view["status"],
        "the webhook tells the stored end"
    );
    assert!(stack.bucket.objects().is_empty(), "the stopped delivery uploads nothing");
}
