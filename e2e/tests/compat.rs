//! TailPDF's real clients, unchanged, over the whole stack (wrangler dev, the renderer with
//! Chromium, s3s-fs): the bodies and headers TailPDF's PHP client (mralston/tailpdf) sends,
//! Puppeteer-style `pdfOptions`, unknown keys, and the limits as TailPDF states them. Each
//! answer is checked against openapi.yaml, and each PDF's page size against what Puppeteer's
//! rules give for the same options.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{extract::State, Router};
use serde_json::{json, Value};
use tailpdf_e2e::{
    client::{client, ended, internal, post_pdf_raw, send, submit_with, Reply},
    contract::Contract,
    fonts::FontsApi,
    pdf::{first_word_at, page_info, poppler},
    servers::Served,
    stack::{Settings, Stack, API_KEY},
};
use tailpdf_shared::limits::MAX_CONTENT_BYTES;

/// A webhook receiver that answers every delivery with a redirect to `/target`, and counts
/// what reaches `/target`.
async fn redirecting_receiver() -> (Served, Arc<AtomicUsize>) {
    let followed = Arc::new(AtomicUsize::new(0));
    let counted = followed.clone();
    let server = Served::start(|_| {
        Router::new()
            .route(
                "/hook",
                axum::routing::post(async || axum::response::Redirect::temporary("/target")),
            )
            .route(
                "/target",
                axum::routing::post(async |State(n): State<Arc<AtomicUsize>>| {
                    n.fetch_add(1, Ordering::SeqCst);
                    "ok"
                }),
            )
            .with_state(counted)
    })
    .await;
    (server, followed)
}

/// Every answer of the edge is private to its account.
fn no_store(reply: &Reply) {
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{}", reply.status);
}

/// A request as a client library sends it, and what must come of it.
struct Shape {
    name: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Value,
    /// Page size in points, as Puppeteer's rules give it for the same options.
    size: (f64, f64),
    /// `X-TailPDF-Ignored`, exactly.
    ignored: Option<&'static str>,
    /// Where the first word starts (x, y in points), when the margins are what is tested.
    first_word: Option<(f64, f64)>,
}

/// A block at the page's top left corner: its first word sits on the margins.
const AT_CORNER: &str = r#"<div class="m-0 p-0 leading-none text-base">Margins here</div>"#;

fn shapes(upload_url: &str) -> Vec<Shape> {
    let php = vec![("X-No-Store", "false")];
    vec![
        Shape {
            name: "PHP client defaults: [] for config, fonts and margin",
            headers: php.clone(),
            body: json!({"content": AT_CORNER, "fonts": [], "config": [], "pdfOptions":
                {"format": "a4", "landscape": false, "printBackground": true, "scale": 1, "margin": []}}),
            size: (595.3, 841.9),
            ignored: None,
            first_word: Some((0.0, 0.0)),
        },
        Shape {
            name: "lower-case a3, landscape, unit-less margins as strings (pixels)",
            headers: php.clone(),
            body: json!({"content": AT_CORNER, "fonts": [], "config": [], "pdfOptions":
                {"format": "a3", "landscape": true, "printBackground": true, "scale": 1.0,
                 "margin": {"top": "96", "right": "0", "bottom": "10", "left": "48"}}}),
            size: (1190.6, 841.9),
            ignored: None,
            first_word: Some((36.0, 72.0)),
        },
        Shape {
            name: "custom size in float pixels, float scale, [] config with fonts",
            headers: vec![("X-No-Store", "true")],
            body: json!({"content": "<p class=\"p-4\">Custom</p>", "fonts": ["Inter:wght@400"],
                "config": [], "pdfOptions": {"format": "custom", "landscape": false, "scale": 1.5,
                "printBackground": true, "width": 595.5, "height": 842,
                "margin": {"top": "0", "right": "0", "bottom": "0", "left": "0"}}}),
            size: (446.6, 631.5),
            ignored: None,
            first_word: None,
        },
        Shape {
            name: "margins with units and numbers",
            headers: vec![],
            body: json!({"content": AT_CORNER, "pdfOptions": {"format": "Letter",
                "margin": {"top": 48, "left": "10mm"}}}),
            size: (612.0, 792.0),
            ignored: None,
            first_word: Some((28.35, 36.0)),
        },
        Shape {
            name: "upper-case ledger",
            headers: vec![],
            body: json!({"content": "<p>Ledger</p>", "pdfOptions": {"format": "LEDGER"}}),
            size: (1224.0, 792.0),
            ignored: None,
            first_word: None,
        },
        Shape {
            name: "width and height without a format: a number and a unit-less string",
            headers: vec![],
            body: json!({"content": "<p>Sized</p>", "pdfOptions": {"format": "", "width": 595.5,
                "height": "842"}}),
            size: (446.6, 631.5),
            ignored: None,
            first_word: None,
        },
        Shape {
            name: "a paper format wins over width and height, as in Puppeteer",
            headers: vec![],
            body: json!({"content": "<p>A6</p>", "pdfOptions": {"format": "a6", "width": 100,
                "height": 100}}),
            size: (297.6, 419.5),
            ignored: Some("pdfOptions.width, pdfOptions.height"),
            first_word: None,
        },
        Shape {
            name: "keys tailpdf does not know",
            headers: vec![],
            body: json!({"content": "<p>Unknown</p>", "filename": "a.pdf", "pdfOptions":
                {"format": "letter", "timeout": 30000, "omitBackground": true, "path": "a.pdf"}}),
            size: (612.0, 792.0),
            ignored: Some(
                "filename, pdfOptions.omitBackground, pdfOptions.path, pdfOptions.timeout",
            ),
            first_word: None,
        },
        Shape {
            name: "URLs without async: the PDF is the answer",
            headers: vec![],
            body: json!({"content": "<p>Sync</p>", "upload_url": upload_url, "webhook_url": ""}),
            size: (612.0, 792.0),
            ignored: Some("upload_url"),
            first_word: None,
        },
        Shape {
            name: "null for everything optional",
            headers: vec![],
            body: json!({"content": "<p>Nulls</p>", "config": null, "fonts": null,
                "pdfOptions": null, "async": null, "upload_url": null, "webhook_url": null}),
            size: (612.0, 792.0),
            ignored: None,
            first_word: None,
        },
    ]
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

async fn post(
    stack: &Stack,
    contract: &Contract,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut all = vec![("X-API-Key", API_KEY)];
    all.extend_from_slice(headers);
    let reply = post_pdf_raw(stack, contract, &all, body).await;
    no_store(&reply);
    reply
}

/// `GET /internal/jobs/{id}/spec` as the renderer calls it: is the job's spec stored?
async fn spec_stored(stack: &Stack, id: &str) -> bool {
    let path = format!("/internal/jobs/{id}/spec");
    match internal(&stack.edge.url, reqwest::Method::GET, &path, Vec::new()).await.status {
        200 => true,
        404 => false,
        other => panic!("the spec endpoint answered {other}"),
    }
}

/// 1 MiB of `content` (a comment full of quotes, so that it stays one page) written with
/// every quote as `\u0022`: a body six times the content.
fn one_mib_body(extra_bytes: usize) -> Vec<u8> {
    let head = "<p>One megabyte</p><!--";
    let tail = "-->";
    let quotes = MAX_CONTENT_BYTES - head.len() - tail.len() + extra_bytes;
    let escaped = "\\u0022".repeat(quotes);
    format!(r#"{{"content":"{head}{escaped}{tail}","pdfOptions":{{"format":"a4"}}}}"#).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tailpdf_clients_work_unchanged() {
    let fonts = FontsApi::start().await;
    let settings = Settings { fonts_api_base: Some(fonts.base.clone()), ..Settings::default() };
    let stack = Stack::start(settings).await;
    let contract = Contract::load();

    // GET / is the client libraries' liveness check; a known path with the wrong method is 405.
    let index = send(client().get(format!("{}/", stack.edge.url))).await;
    contract.check_response("/", "get", index.status, &index.headers, &index.body);
    assert_eq!((index.status, index.json()["service"].as_str()), (200, Some("tailpdf")));
    no_store(&index);
    for (method, path, allow) in [
        ("GET", "/pdf", "POST"),
        ("DELETE", "/jobs/01JFXYZ123456789ABCDEFGH", "GET, HEAD"),
        // Methods the Workers runtime has no name for: found by the schema fuzzer.
        ("QUERY", "/", "GET, HEAD"),
        ("PROPFIND", "/jobs/01JFXYZ123456789ABCDEFGH", "GET, HEAD"),
    ] {
        let url = format!("{}{path}", stack.edge.url);
        let reply = send(client().request(method.parse().unwrap(), url)).await;
        // 405 is documented under the path's own operation.
        let (documented, operation) = match path {
            "/pdf" => ("/pdf", "post"),
            "/" => ("/", "get"),
            _ => ("/jobs/{job_id}", "get"),
        };
        contract.check_response(documented, operation, reply.status, &reply.headers, &reply.body);
        assert_eq!((reply.status, reply.header("allow")), (405, Some(allow)), "{method} {path}");
        assert_eq!(reply.json()["error"], "method_not_allowed");
    }

    // Every shape the clients send renders, at the page size Puppeteer gives the same options.
    let unused_upload = stack.bucket.upload_url("never/sync.pdf");
    let mut measured = Vec::new();
    for shape in shapes(&unused_upload) {
        let reply =
            post(&stack, &contract, &shape.headers, shape.body.to_string().into_bytes()).await;
        assert_eq!(reply.status, 200, "{}: {}", shape.name, reply.text());
        assert_eq!(reply.header("content-type"), Some("application/pdf"), "{}", shape.name);
        assert_eq!(reply.header("x-tailpdf-ignored"), shape.ignored, "{}", shape.name);
        let (pages, w, h) = page_info(&reply.body);
        assert_eq!(pages, 1, "{}", shape.name);
        let (ew, eh) = shape.size;
        assert!(
            close(w, ew, 1.0) && close(h, eh, 1.0),
            "{}: {w} x {h}, not {ew} x {eh}",
            shape.name
        );
        if let Some((ex, ey)) = shape.first_word {
            let (x, y) = first_word_at(&reply.body);
            assert!(
                close(x, ex, 2.0) && y >= ey - 3.0 && y <= ey + 6.0,
                "{}: text at ({x}, {y}), margins give ({ex}, {ey})",
                shape.name
            );
        }
        measured.push(format!("{}: {w} x {h} pt", shape.name));
    }
    assert!(fonts.hits() >= 2, "the requested font was fetched (css2, file)");
    assert!(stack.bucket.objects().is_empty(), "a sync request's upload_url is not used");
    eprintln!("page sizes:\n  {}", measured.join("\n  "));

    // A known key of the wrong type, and custom without both sides: 400 naming the field.
    for (body, starts) in [
        (json!({"content": "x", "pdfOptions": {"landscape": "yes"}}), "`pdfOptions.landscape`"),
        (
            json!({"content": "x", "pdfOptions": {"format": "custom", "width": 100}}),
            "`pdfOptions.format` \"custom\"",
        ),
        (json!({"content": "x", "config": "tailwind.config.js"}), "`config`"),
        // A family the fonts API does not have is the request's fault: 400, not 500.
        (
            json!({"content": "x", "fonts": ["Nosuchfont"]}),
            "Font \"Nosuchfont\" could not be loaded",
        ),
        // tailpdf's document features: checked at the edge, before anything is queued.
        (json!({"content": "x", "pdfOptions": {"pdfa": "1b"}}), "`pdfOptions.pdfa` \"1b\""),
        (
            json!({"content": "x", "pdfOptions": {"pdfa": "2b", "password": {"user": "u"}}}),
            "`pdfOptions.pdfa` and `pdfOptions.password` cannot go together",
        ),
        (
            json!({"content": "x", "pdfOptions": {"password": {"user": "u", "owner": "u"}}}),
            "`pdfOptions.password.owner` equals `user`",
        ),
        (
            json!({"content": "x", "pdfOptions": {"password": {"user": "u",
                "permissions": {"printing": false}}}}),
            "`pdfOptions.password",
        ),
        (
            json!({"content": "x", "pdfOptions": {"metadata": {"creationDate": "today"}}}),
            "`pdfOptions.metadata.creationDate`",
        ),
    ] {
        let reply = post(&stack, &contract, &[], body.to_string().into_bytes()).await;
        assert_eq!(reply.status, 400, "{body}");
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.starts_with(starts), "{body}: {message}");
    }

    // Password, metadata and PDF/A, sync and async alike.
    let body = json!({"content": "<title>Doc</title><p>Locked</p>", "pdfOptions":
        {"password": {"user": "sync-secret", "permissions": {"copy": false}},
         "metadata": {"title": "Statement", "author": "ACME"}}});
    let reply = post(&stack, &contract, &[], body.to_string().into_bytes()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let (code, _, _) = tailpdf_e2e::pdf::run_on("pdfinfo", &reply.body, &[], &[]);
    assert_ne!(code, 0, "opened without its password");
    let info = poppler("pdfinfo", &reply.body, &["-upw", "sync-secret"]);
    assert!(info.contains("Title:           Statement"), "{info}");
    assert!(info.contains("copy:no") && info.contains("AES-256"), "{info}");
    let job = json!({"content": "<p>Archived</p>", "async": true, "pdfOptions": {"pdfa": "2b"},
        "upload_url": stack.bucket.upload_url("async/archived.pdf")});
    let (id, _) = submit_with(&stack, &contract, &[], &job).await;
    let ended_job = ended(&stack, &contract, &id, Duration::from_secs(90)).await;
    assert_eq!(ended_job["status"], "completed", "{ended_job}");
    let archived = stack.bucket.object("async/archived.pdf").unwrap();
    let xmp = poppler("pdfinfo", &archived, &["-meta"]);
    assert!(xmp.contains("<pdfaid:part>2</pdfaid:part>"), "{xmp}");
    let job = json!({"content": "<p>Locked async</p>", "async": true,
        "pdfOptions": {"password": {"user": "async-secret"}},
        "upload_url": stack.bucket.upload_url("async/locked.pdf")});
    let (id, _) = submit_with(&stack, &contract, &[], &job).await;
    assert_eq!(ended(&stack, &contract, &id, Duration::from_secs(90)).await["status"], "completed");
    let locked = stack.bucket.object("async/locked.pdf").unwrap();
    let text = poppler("pdftotext", &locked, &["-upw", "async-secret"]);
    assert!(text.contains("Locked async"), "{text}");

    // content of 1 MiB renders however its JSON is written; one byte more is a 400 naming the
    // limit.
    let body = one_mib_body(0);
    assert!(body.len() > 5 * MAX_CONTENT_BYTES, "{} bytes", body.len());
    let reply = post(&stack, &contract, &[], body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(poppler("pdftotext", &reply.body, &[]).contains("One megabyte"));
    let reply = post(&stack, &contract, &[], one_mib_body(1)).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.json()["message"].as_str().unwrap().contains("1048576 bytes (1 MB)"));

    // Async: a spec too large for the queue message is stored while the job runs, then deleted;
    // with X-No-Store a small one is never stored. Both complete.
    let mut large: Value = serde_json::from_slice(&one_mib_body(0)).unwrap();
    large["async"] = json!(true);
    large["upload_url"] = json!(stack.bucket.upload_url("async/large.pdf"));
    large["webhook_url"] = json!("");
    let (large_id, reply) = submit_with(&stack, &contract, &[], &large).await;
    no_store(&reply);
    let small = json!({"content": "<p>Private</p>", "config": [], "fonts": [], "async": true,
        "upload_url": stack.bucket.upload_url("async/private.pdf"), "webhook_url": stack.receiver.url});
    let (private_id, reply) =
        submit_with(&stack, &contract, &[("X-No-Store", "true")], &small).await;
    assert_eq!(reply.header("x-tailpdf-ignored"), None);
    assert!(!spec_stored(&stack, &private_id).await, "an inline spec is never written to KV");
    for (id, key) in [(&large_id, "async/large.pdf"), (&private_id, "async/private.pdf")] {
        let job = ended(&stack, &contract, id, Duration::from_secs(90)).await;
        assert_eq!(job["status"], "completed", "{job}\n{}", stack.renderer.log());
        assert_eq!(job["result"]["file_size_bytes"], stack.bucket.object(key).unwrap().len());
        assert!(!spec_stored(&stack, id).await, "{id}: nothing of the document outlives its job");
    }
    let logs = format!("{}\n{}", stack.renderer.log(), stack.edge.log());
    assert!(!logs.contains("Private</p>"), "no document text in the logs");
    assert!(!logs.contains("-secret"), "no password in the logs");

    // A webhook answered with a redirect is not followed (it could point anywhere, private
    // included): the redirect is the answer, and the delivery is retried as a failure.
    let (receiver, followed) = redirecting_receiver().await;
    let hook = format!("{}/hook", receiver.base);
    let job = json!({"content": "<p>Redirected</p>", "async": true,
        "upload_url": stack.bucket.upload_url("async/redirected.pdf"), "webhook_url": hook});
    let (id, _) = submit_with(&stack, &contract, &[], &job).await;
    let mut last = Value::Null;
    tailpdf_e2e::stack::wait_until("a webhook attempt", Duration::from_secs(60), async || {
        last = tailpdf_e2e::client::get_job(&stack, &contract, &id).await.json();
        last["webhook"]["attempts"].as_u64().is_some_and(|n| n >= 2)
    })
    .await;
    assert_eq!(last["webhook"]["last_status"], 307, "{last}");
    assert_eq!(followed.load(Ordering::SeqCst), 0, "the redirect was followed");
}
