//! The public API as a client calls it, every request and response checked against
//! `openapi.yaml`.

use std::{process::Command, time::Duration};

use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use tailpdf_shared::signing::{sign_internal, INTERNAL_SIGNATURE_HEADER};

use crate::{
    contract::Contract,
    now, root,
    stack::{wait_until, Stack, API_KEY, INTERNAL_SECRET},
};

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The body as text, for assertion messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    Reply { status, headers, body }
}

/// A call of the internal protocol (the edge's `/internal/...`, the renderer's `/render` and
/// `/jobs`), signed with the stack's `INTERNAL_SECRET` as the other side signs it.
pub async fn internal(base: &str, method: reqwest::Method, path: &str, body: Vec<u8>) -> Reply {
    let signature = sign_internal(INTERNAL_SECRET, now(), method.as_str(), path, &body);
    let request = client()
        .request(method, format!("{base}{path}"))
        .header(INTERNAL_SIGNATURE_HEADER, signature)
        .header("Content-Type", "application/json")
        .body(body);
    send(request).await
}

/// `POST /pdf` with `body` as JSON, its request and response checked against the document.
pub async fn post_pdf(
    stack: &Stack,
    contract: &Contract,
    key: Option<&str>,
    body: &Value,
) -> Reply {
    let headers: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
    post_pdf_raw(stack, contract, &headers, body.to_string().into_bytes()).await
}

/// `POST /pdf` with these exact body bytes and headers (the API key among them, if any).
pub async fn post_pdf_raw(
    stack: &Stack,
    contract: &Contract,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut request = client()
        .post(format!("{}/pdf", stack.edge.url))
        .header("Content-Type", "application/json")
        .body(body.clone());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let reply = send(request).await;
    if reply.status < 300 {
        let value: Value = serde_json::from_slice(&body).unwrap();
        contract.check_request("/pdf", "post", &value);
    }
    contract.check_response("/pdf", "post", reply.status, &reply.headers, &reply.body);
    reply
}

/// `GET /jobs/{id}`, checked against the document.
pub async fn get_job(stack: &Stack, contract: &Contract, id: &str) -> Reply {
    let request =
        client().get(format!("{}/jobs/{id}", stack.edge.url)).header("X-API-Key", API_KEY);
    let reply = send(request).await;
    contract.check_response("/jobs/{job_id}", "get", reply.status, &reply.headers, &reply.body);
    reply
}

/// Submits an async job with `headers` besides the key and returns its id, after checking the
/// 202 as the seed writes it.
pub async fn submit_with(
    stack: &Stack,
    contract: &Contract,
    headers: &[(&str, &str)],
    body: &Value,
) -> (String, Reply) {
    let mut all = vec![("X-API-Key", API_KEY)];
    all.extend_from_slice(headers);
    let reply = post_pdf_raw(stack, contract, &all, body.to_string().into_bytes()).await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    let accepted = reply.json();
    let id = accepted["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        accepted,
        json!({"job_id": id, "status": "pending", "status_url": format!("/jobs/{id}")})
    );
    assert_eq!(reply.headers["location"], format!("/jobs/{id}"));
    (id, reply)
}

/// [`submit_with`] and no other header.
pub async fn submit(stack: &Stack, contract: &Contract, body: &Value) -> String {
    submit_with(stack, contract, &[], body).await.0
}

/// Polls the job until it has ended; returns its JSON.
pub async fn ended(stack: &Stack, contract: &Contract, id: &str, limit: Duration) -> Value {
    let mut last = Value::Null;
    wait_until(&format!("job {id} to end"), limit, async || {
        let reply = get_job(stack, contract, id).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        last = reply.json();
        matches!(last["status"].as_str(), Some("completed" | "failed"))
    })
    .await;
    last
}

/// The seed's own verification code (Node, `crypto.createHmac`), run on what arrived.
pub fn seed_verifies(body: &[u8], signature: &str, secret: &str) -> bool {
    let seed =
        std::fs::read_to_string(root().join("shared/tests/fixtures/seed-async-jobs.txt")).unwrap();
    let start = seed.find("const crypto = require('crypto');").unwrap();
    let end = seed.find("// In your webhook handler:").unwrap();
    let script = format!(
        "{}\nconst payload = require('fs').readFileSync(0);\n\
         process.stdout.write(String(verifyWebhook(payload, process.argv[1], process.argv[2])));",
        &seed[start..end]
    );
    let mut child = Command::new(root().join("node_modules/.bin/node"))
        .args(["-e", &script, signature, secret])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    out.stdout == b"true"
}
