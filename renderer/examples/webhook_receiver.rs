//! A webhook receiver that verifies what tailpdf sends: `X-TailPDF-Signature` the way TailPDF
//! documents it, and the Standard Webhooks headers. Prints one JSON line per delivery.
//! Used by `make demo`.
//!
//!   cargo run -p tailpdf-renderer --example webhook_receiver -- PORT [SECRET] [--once]

use axum::{body::Bytes, http::HeaderMap, routing::post, Router};
use tailpdf_shared::signing::{verify_tailpdf_signature, StandardWebhookKey};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.first().and_then(|p| p.parse().ok()).unwrap_or(8790);
    let secret = args
        .get(1)
        .filter(|s| !s.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| String::from("dev-webhook-secret"));
    let once = args.iter().any(|a| a == "--once");
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let secret = secret.clone();
            let done = done_tx.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
                let tailpdf_ok = verify_tailpdf_signature(&secret, &body, &header("x-tailpdf-signature")).is_ok();
                let standard_ok = StandardWebhookKey::from_secret(&secret)
                    .verify(&header("webhook-id"), &header("webhook-timestamp"), &header("webhook-signature"), &body, now)
                    .is_ok();
                let payload: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                println!(
                    "{}",
                    serde_json::json!({
                        "event": header("x-tailpdf-event"), "webhook_id": header("webhook-id"),
                        "x_tailpdf_signature_valid": tailpdf_ok, "standard_webhooks_signature_valid": standard_ok,
                        "payload": payload,
                    })
                );
                let _ = done.send(()).await;
                "ok"
            }
        }),
    );
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        if once {
            done_rx.recv().await;
        } else {
            std::future::pending::<()>().await;
        }
    });
    if let Err(e) = server.await {
        eprintln!("receiver failed: {e}");
    }
}
