//! The whole stack for real — the built Worker under `wrangler dev --local` (workerd, Miniflare
//! KV and Queues), the renderer binary with Debian's Chromium, s3s-fs checking SigV4 presigned
//! URLs, a webhook receiver — driven through the public API as the seed's flows are written.
//! Every response and webhook is also checked against openapi.yaml.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{json, Value};
use tailpdf_e2e::{
    client::{client, ended, get_job, post_pdf, seed_verifies, send, submit, Reply},
    contract::Contract,
    now,
    pdf::poppler,
    process::{alive, descendants},
    root,
    servers::HeldImage,
    stack::{wait_until, Settings, Stack, API_KEY, INTERNAL_SECRET, WEBHOOK_SECRET},
};
use tailpdf_shared::signing::StandardWebhookKey;

/// A valid A4 PDF with `text` in it.
fn assert_pdf(pdf: &[u8], text: &str) {
    assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
    let info = poppler("pdfinfo", pdf, &[]);
    assert!(info.contains("pts (A4)"), "{info}");
    assert!(poppler("pdftotext", pdf, &[]).contains(text));
}

/// One webhook per job, checked against the document and both signature schemes.
async fn webhook_for(stack: &Stack, contract: &Contract, id: &str, event: &str) -> Value {
    wait_until(&format!("the {event} webhook of {id}"), Duration::from_secs(30), async || {
        !stack.receiver.for_job(id).is_empty()
    })
    .await;
    let delivery = stack.receiver.for_job(id).remove(0);
    let name = if event == "render.completed" { "renderCompleted" } else { "renderFailed" };
    contract.check_webhook(name, &delivery.headers, &delivery.body);
    assert_eq!(delivery.header("x-tailpdf-event"), event);
    assert_eq!(delivery.header("user-agent"), "TailPDF-Webhook/1.0");
    let signature = delivery.header("x-tailpdf-signature");
    assert!(seed_verifies(&delivery.body, signature, WEBHOOK_SECRET), "X-TailPDF-Signature");
    assert!(!seed_verifies(&delivery.body, signature, "another-secret"));
    let key = StandardWebhookKey::from_secret(WEBHOOK_SECRET);
    let (wid, wts) = (delivery.header("webhook-id"), delivery.header("webhook-timestamp"));
    assert!(key
        .verify(wid, wts, delivery.header("webhook-signature"), &delivery.body, now())
        .is_ok());
    delivery.json()
}

fn timestamps_in_order(job: &Value) {
    let at = |f: &str| job[f].as_str().unwrap_or_else(|| panic!("no {f}: {job}")).to_owned();
    // RFC 3339 UTC with whole seconds: text order is time order.
    assert!(at("created_at") <= at("started_at"), "{job}");
    assert!(at("started_at") <= at("completed_at"), "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_flows_over_the_whole_stack() {
    const TTL: u64 = 15;
    let stack = Stack::start(Settings { job_ttl_done_secs: TTL, ..Settings::default() }).await;
    let contract = Contract::load();

    // Errors, as the document describes them.
    let reply = post_pdf(&stack, &contract, None, &json!({"content": "x"})).await;
    assert_eq!((reply.status, reply.json()["error"].as_str()), (401, Some("unauthorized")));
    let reply =
        post_pdf(&stack, &contract, Some(API_KEY), &json!({"content": "x", "async": true})).await;
    assert_eq!((reply.status, reply.json()["error"].as_str()), (400, Some("validation_error")));
    let reply = get_job(&stack, &contract, "01JFXYZ123456789ABCDEFGH").await;
    assert_eq!((reply.status, reply.json()["error"].as_str()), (404, Some("not_found")));

    // A sync render: the PDF in the response.
    let sync = json!({
        "content": "<div class=\"p-8 bg-teal-50\"><h1 class=\"text-3xl font-bold text-teal-700\">Sync hello</h1></div>",
        "pdfOptions": {"format": "A4", "printBackground": true},
    });
    let reply = post_pdf(&stack, &contract, Some(API_KEY), &sync).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.headers["content-type"], "application/pdf");
    assert_pdf(&reply.body, "Sync hello");

    // Three async jobs at once: one that completes, two whose presigned URL the bucket refuses.
    let invoice = std::fs::read_to_string(root().join("examples/invoice.html")).unwrap();
    let urls = [
        stack.bucket.upload_url("invoices/1234.pdf"),
        stack.bucket.forbidden_url("forbidden.pdf"),
        stack.bucket.expired_url("expired.pdf"),
    ];
    let ok = submit(&stack, &contract, &stack.async_job(&invoice, &urls[0])).await;
    let forbidden = submit(&stack, &contract, &stack.async_job("<p>forbidden</p>", &urls[1])).await;
    let expired = submit(&stack, &contract, &stack.async_job("<p>expired</p>", &urls[2])).await;

    // Completed: the object is a valid PDF of exactly result.file_size_bytes.
    let job = ended(&stack, &contract, &ok, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "completed", "{job}\n{}", stack.renderer.log());
    timestamps_in_order(&job);
    let pdf = stack.bucket.object("invoices/1234.pdf").expect("the PDF is in the bucket");
    assert_eq!(job["result"]["file_size_bytes"], pdf.len(), "{job}");
    assert_pdf(&pdf, "Invoice");
    let hook = webhook_for(&stack, &contract, &ok, "render.completed").await;
    assert_eq!(hook["job_id"], ok.as_str());
    let mut expected = job["result"].clone();
    expected["status"] = json!("completed");
    assert_eq!(hook["data"], expected, "the webhook carries the job's result");
    let completed_at = job["completed_at"].as_str().unwrap().to_owned();

    // Failed: "Upload failed: 403 Forbidden" in the status and in the render.failed webhook.
    for id in [&forbidden, &expired] {
        let job = ended(&stack, &contract, id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["error_message"], "Upload failed: 403 Forbidden", "{job}");
        timestamps_in_order(&job);
        let hook = webhook_for(&stack, &contract, id, "render.failed").await;
        assert_eq!(
            hook["data"],
            json!({"status": "failed", "error_message": "Upload failed: 403 Forbidden"})
        );
    }
    // A config holding an integer JavaScript cannot represent travels the queue intact:
    // found by the schema fuzzer (it was a 503).
    let mut big =
        stack.async_job("<p class=\"z-top\">Big</p>", &stack.bucket.upload_url("big.pdf"));
    big["config"] =
        json!({"theme": {"extend": {"zIndex": {"top": 1_406_369_644_135_711_232_u64}}}});
    let big = submit(&stack, &contract, &big).await;
    let job = ended(&stack, &contract, &big, Duration::from_secs(60)).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        stack.bucket.objects(),
        ["big.pdf", "invoices/1234.pdf"],
        "no object for the refused URLs"
    );

    // Past its TTL the job is gone: 404, as for a job that never was.
    let ended_at = time_of(&completed_at);
    let wait = (ended_at + TTL as i64 + 2 - now()).max(0);
    tokio::time::sleep(Duration::from_secs(wait as u64)).await;
    let reply = get_job(&stack, &contract, &ok).await;
    assert_eq!((reply.status, reply.json()["error"].as_str()), (404, Some("not_found")));
    // Exactly one webhook per job, however long we wait.
    for id in [&ok, &forbidden, &expired, &big] {
        assert_eq!(stack.receiver.for_job(id).len(), 1, "{id}");
    }

    // The logs of the whole run name the jobs but hold no secret and no URL signature.
    let logs = format!("{}\n{}", stack.renderer.log(), stack.edge.log());
    assert!(logs.contains(&ok), "the logs name the jobs");
    let signatures = urls.iter().map(|url| url.split("X-Amz-Signature=").nth(1).unwrap());
    for secret in signatures.chain([INTERNAL_SECRET, WEBHOOK_SECRET, API_KEY]) {
        assert!(!logs.contains(secret), "a log holds {secret}");
    }
    assert!(!logs.contains("X-Amz-Signature="), "a log holds a presigned URL's signature");
}

/// Unix seconds of an RFC 3339 timestamp.
fn time_of(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_second()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_killed_mid_job_loses_nothing() {
    let mut stack = Stack::start(Settings::default()).await;
    let contract = Contract::load();
    let image = HeldImage::start().await;
    let image_url = image.url.clone();

    let content =
        format!(r#"<img src="{image_url}" class="w-10 h-10"><p class="text-xl">Survived</p>"#);
    let id = submit(
        &stack,
        &contract,
        &stack.async_job(&content, &stack.bucket.upload_url("crash/1.pdf")),
    )
    .await;

    // The render has started (Chromium asked for the image): kill the renderer outright.
    wait_until("the render to start", Duration::from_secs(60), async || image.hits() > 0).await;
    let renderer_pid = stack.renderer.pid();
    let chromium = descendants(renderer_pid);
    assert!(!chromium.is_empty(), "the renderer runs Chromium");
    stack.renderer.kill_hard();
    wait_until("the killed renderer's Chromium to exit", Duration::from_secs(10), async || {
        chromium.iter().all(|&pid| !alive(pid))
    })
    .await;
    let job = get_job(&stack, &contract, &id).await.json();
    assert_eq!(job["status"], "processing", "the job is not lost, not failed: {job}");

    // Started again, the renderer gets the job again from the queue and finishes it.
    stack.renderer.restart().await;
    let job = ended(&stack, &contract, &id, Duration::from_secs(120)).await;
    assert_eq!(job["status"], "completed", "{job}\n{}\n{}", stack.renderer.log(), stack.edge.log());
    timestamps_in_order(&job);
    assert!(image.hits() >= 2, "rendered again after the restart");
    assert_eq!(stack.bucket.objects(), ["crash/1.pdf"], "one object");
    let pdf = stack.bucket.object("crash/1.pdf").unwrap();
    assert_eq!(job["result"]["file_size_bytes"], pdf.len());
    assert_pdf(&pdf, "Survived");

    webhook_for(&stack, &contract, &id, "render.completed").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let deliveries = stack.receiver.for_job(&id);
    let ids: Vec<&str> = deliveries.iter().map(|d| d.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|w| *w == format!("msg_{id}_completed")),
        "every delivery carries the same webhook-id: {ids:?}"
    );
}

/// `POST /pdf/batch` with `body`, its request and response checked against the document.
async fn post_batch(stack: &Stack, contract: &Contract, key: Option<&str>, body: &Value) -> Reply {
    let mut request = client()
        .post(format!("{}/pdf/batch", stack.edge.url))
        .header("Content-Type", "application/json")
        .header("X-API-Key", API_KEY)
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let reply = send(request).await;
    if reply.status < 300 {
        contract.check_request("/pdf/batch", "post", body);
    }
    contract.check_response("/pdf/batch", "post", reply.status, &reply.headers, &reply.body);
    reply
}

/// The job ids of a batch's `202`, in the order of its documents.
fn job_ids(accepted: &Value) -> Vec<String> {
    let jobs = accepted["jobs"].as_array().unwrap();
    jobs.iter().map(|j| j["job_id"].as_str().unwrap().to_owned()).collect()
}

async fn get_batch(stack: &Stack, contract: &Contract, id: &str) -> Reply {
    let request =
        client().get(format!("{}/batches/{id}", stack.edge.url)).header("X-API-Key", API_KEY);
    let reply = send(request).await;
    contract.check_response(
        "/batches/{batch_id}",
        "get",
        reply.status,
        &reply.headers,
        &reply.body,
    );
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_printed_together_and_each_document_ends_as_a_job() {
    let stack = Stack::start(Settings::default()).await;
    let contract = Contract::load();
    let invoice = std::fs::read_to_string(root().join("examples/invoice.html")).unwrap();
    const N: usize = 12;
    const REFUSED: usize = 5;
    let documents: Vec<Value> = (0..N)
        .map(|i| {
            let url = if i == REFUSED {
                stack.bucket.forbidden_url("batch/refused.pdf")
            } else {
                stack.bucket.upload_url(&format!("batch/{i}.pdf"))
            };
            json!({
                "content": invoice.replace("#INV-2024-1234", &format!("#INV-2024-{}", 8000 + i)),
                "upload_url": url,
                "webhook_url": stack.receiver.url,
                "metadata": {"title": format!("Invoice {i}")},
            })
        })
        .collect();
    let body = json!({
        "pdfOptions": {"format": "A4", "printBackground": true, "metadata": {"author": "Acme"}},
        "webhook_url": stack.receiver.url,
        "documents": documents,
    });

    // All or nothing: one bad document refuses the batch, naming it.
    let mut bad = body.clone();
    bad["documents"][3]["upload_url"] = json!("ftp://bucket.example.com/x.pdf");
    let reply = post_batch(&stack, &contract, None, &bad).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.json()["message"].as_str().unwrap().contains("documents[3].upload_url"));

    let reply = post_batch(&stack, &contract, Some("batch-key-1"), &body).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let accepted = reply.json();
    let batch = accepted["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(accepted["status_url"], format!("/batches/{batch}"));
    let jobs = job_ids(&accepted);
    assert_eq!(jobs.len(), N);
    // The same key and body: the same batch.
    let again = post_batch(&stack, &contract, Some("batch-key-1"), &body).await;
    assert_eq!((again.status, again.json()), (202, accepted.clone()));

    let mut view = Value::Null;
    wait_until("the batch to complete", Duration::from_secs(120), async || {
        let reply = get_batch(&stack, &contract, &batch).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        view = reply.json();
        view["status"] == "completed"
    })
    .await;
    assert_eq!(view["total"], N);
    assert_eq!(view["counts"]["completed"], N - 1, "{view}");
    assert_eq!(view["counts"]["failed"], 1, "{view}");

    // Each document: its own PDF, with its own invoice and title only; its own job and webhook.
    for (i, id) in jobs.iter().enumerate() {
        let job = ended(&stack, &contract, id, Duration::from_secs(30)).await;
        if i == REFUSED {
            assert_eq!(job["error_message"], "Upload failed: 403 Forbidden", "{job}");
            webhook_for(&stack, &contract, id, "render.failed").await;
            continue;
        }
        assert_eq!(job["status"], "completed", "{job}");
        let pdf = stack.bucket.object(&format!("batch/{i}.pdf")).expect("uploaded");
        assert_eq!(job["result"]["file_size_bytes"], pdf.len());
        let text = poppler("pdftotext", &pdf, &[]);
        assert!(text.contains(&format!("#INV-2024-{}", 8000 + i)), "{text}");
        assert_eq!(text.matches("#INV-2024-").count(), 1, "only its own invoice: {text}");
        let info = poppler("pdfinfo", &pdf, &[]);
        assert!(info.contains(&format!("Invoice {i}")) && info.contains("Acme"), "{info}");
        webhook_for(&stack, &contract, id, "render.completed").await;
    }

    // One batch.completed, signed like the others.
    wait_until("the batch webhook", Duration::from_secs(30), async || {
        stack.receiver.all().iter().any(|d| d.json()["event"] == "batch.completed")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hooks: Vec<_> = stack
        .receiver
        .all()
        .into_iter()
        .filter(|d| d.json()["event"] == "batch.completed")
        .collect();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    contract.check_webhook("batchCompleted", &hook.headers, &hook.body);
    assert!(seed_verifies(&hook.body, hook.header("x-tailpdf-signature"), WEBHOOK_SECRET));
    let key = StandardWebhookKey::from_secret(WEBHOOK_SECRET);
    let (wid, wts) = (hook.header("webhook-id"), hook.header("webhook-timestamp"));
    assert_eq!(wid, format!("msg_{batch}_batch_completed"));
    assert!(key.verify(wid, wts, hook.header("webhook-signature"), &hook.body, now()).is_ok());
    let data = &hook.json()["data"];
    assert_eq!(
        (data["total"].as_u64(), data["completed"].as_u64(), data["failed"].as_u64()),
        (Some(N as u64), Some(N as u64 - 1), Some(1))
    );

    // The renderer printed the batch's documents together.
    let metrics = stack.renderer.metrics().await;
    let grouped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tailpdf_grouped_documents_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(grouped >= N as u64 / 2, "{grouped} documents printed in groups\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_killed_mid_batch_loses_nothing() {
    let mut stack = Stack::start(Settings::default()).await;
    let contract = Contract::load();
    let image = HeldImage::start().await;
    const N: usize = 6;
    let documents: Vec<Value> = (0..N)
        .map(|i| {
            json!({
                "content": format!(
                    r#"<img src="{}" class="w-10 h-10"><p class="text-xl">Survivor {i}</p>"#,
                    image.url
                ),
                "upload_url": stack.bucket.upload_url(&format!("crash-batch/{i}.pdf")),
                "webhook_url": stack.receiver.url,
            })
        })
        .collect();
    let body = json!({
        "pdfOptions": {"format": "A4"},
        "webhook_url": stack.receiver.url,
        "documents": documents,
    });
    let reply = post_batch(&stack, &contract, None, &body).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let accepted = reply.json();
    let batch = accepted["batch_id"].as_str().unwrap().to_owned();
    let jobs = job_ids(&accepted);

    // The group is printing (Chromium asked for the image): kill the renderer outright.
    wait_until("the group to start", Duration::from_secs(60), async || image.hits() > 0).await;
    let chromium = descendants(stack.renderer.pid());
    stack.renderer.kill_hard();
    wait_until("the killed renderer's Chromium to exit", Duration::from_secs(10), async || {
        chromium.iter().all(|&pid| !alive(pid))
    })
    .await;
    for id in &jobs {
        let job = get_job(&stack, &contract, id).await.json();
        assert!(
            matches!(job["status"].as_str(), Some("pending" | "processing")),
            "not lost, not failed: {job}"
        );
    }

    // Started again, the renderer gets every document again and finishes the batch.
    stack.renderer.restart().await;
    wait_until("the batch to complete", Duration::from_secs(120), async || {
        get_batch(&stack, &contract, &batch).await.json()["status"] == "completed"
    })
    .await;
    let view = get_batch(&stack, &contract, &batch).await.json();
    assert_eq!(view["counts"]["completed"], N, "{view}\n{}", stack.renderer.log());
    assert!(image.hits() >= 2, "rendered again after the restart");
    assert_eq!(stack.bucket.objects().len(), N, "one object per document");
    for (i, id) in jobs.iter().enumerate() {
        let pdf = stack.bucket.object(&format!("crash-batch/{i}.pdf")).unwrap();
        assert!(poppler("pdftotext", &pdf, &[]).contains(&format!("Survivor {i}")));
        webhook_for(&stack, &contract, id, "render.completed").await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &jobs {
        let ids: Vec<String> =
            stack.receiver.for_job(id).iter().map(|d| d.header("webhook-id").to_owned()).collect();
        assert!(ids.iter().all(|w| *w == format!("msg_{id}_completed")), "{ids:?}");
    }
    let batch_hooks =
        stack.receiver.all().into_iter().filter(|d| d.json()["event"] == "batch.completed");
    let ids: Vec<String> = batch_hooks.map(|d| d.header("webhook-id").to_owned()).collect();
    assert_eq!(ids, [format!("msg_{batch}_batch_completed")], "one batch.completed");
}
