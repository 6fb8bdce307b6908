//! `tailpdf-admin` against the built Worker under `wrangler dev --local`, writing to the same
//! local KV while it runs: a created key works, its account's limits reach the edge, a revoked
//! or rotated-out key gets 401 at once.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::{path::Path, process::Command, time::Duration};

use tailpdf_e2e::{
    free_port, root,
    stack::{wait_until, Edge, EdgeOptions, Receiver, ACCOUNT},
};
use tailpdf_edge::dead_letters::DeadLetter;
use tailpdf_shared::{
    job::JobRecord, messages::SecretUrl, messages::WebhookMessage, webhook::WebhookPayload,
    JobEvent, JobId, Timestamp,
};

/// Runs `tailpdf-admin` on `wrangler dev`'s storage; its stdout lines (keys, secrets).
fn admin(state: &Path, args: &[&str]) -> Vec<String> {
    let persist = ["--persist-to", &state.to_string_lossy()].map(String::from);
    run_admin(args.iter().map(|a| (*a).to_owned()).chain(persist))
}

fn run_admin(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let args: Vec<String> = args.into_iter().collect();
    let bin = root().join("node_modules/.bin");
    let out = Command::new(env!("CARGO_BIN_EXE_tailpdf-admin"))
        .args(&args)
        .arg("--config")
        .arg(root().join("wrangler.toml"))
        .arg("--wrangler")
        .arg(bin.join("wrangler"))
        .current_dir(root())
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tailpdf-admin {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap().lines().map(String::from).collect()
}

async fn post_pdf(edge: &str, key: &str) -> u16 {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let r = client
        .post(format!("{edge}/pdf"))
        .header("X-API-Key", key)
        .header("content-type", "application/json")
        // Not a valid request: 400 once the key is accepted, so nothing renders.
        .body("{}")
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_made_changed_and_revoked_by_the_admin_tool_take_effect_on_a_running_edge() {
    let dir = tempfile::tempdir().unwrap();
    // No renderer is reached: every request here stops at the key, the limits or validation.
    let mut edge = Edge::spawn(dir.path(), free_port(), &EdgeOptions::new("http://127.0.0.1:9"));
    edge.wait_ready().await;
    let state = dir.path().join("wrangler");

    let created = admin(&state, &["key", "create", "--account", "acme"]);
    let [key, secret] = created.as_slice() else { panic!("a key and a secret: {created:?}") };
    assert!(key.starts_with("tpdf_") && secret.len() == 64, "{created:?}");
    assert_eq!(post_pdf(&edge.url, key).await, 400, "the new key is accepted");
    assert_eq!(post_pdf(&edge.url, "tpdf_not-a-key").await, 401);

    // Limits set for the account reach the edge through the key's record.
    admin(&state, &["account", "limits", "--account", "acme", "--requests-per-minute", "1"]);
    assert_eq!(post_pdf(&edge.url, key).await, 400);
    assert_eq!(post_pdf(&edge.url, key).await, 429, "one a minute");
    let listed = admin(&state, &["key", "list", "--account", "acme"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("requests per minute: 1"), "{listed:?}");
    admin(&state, &["account", "limits", "--account", "acme", "--requests-per-minute", "0"]);

    // A rotation: the new key works, the old one is refused at once.
    let rotated = admin(&state, &["key", "rotate", "--key", key]);
    let [new_key] = rotated.as_slice() else { panic!("{rotated:?}") };
    assert_eq!(post_pdf(&edge.url, key).await, 401, "rotated out");
    assert_eq!(post_pdf(&edge.url, new_key).await, 400);

    // Revoked: 401 on the next request, on the same running edge.
    admin(&state, &["key", "revoke", "--key", new_key]);
    assert_eq!(post_pdf(&edge.url, new_key).await, 401, "revoked");
    // The account stays, for webhooks of jobs still running; a new key joins it.
    let again = admin(&state, &["key", "create", "--account", "acme"]);
    assert_eq!(again.len(), 1, "the account exists: no new secret printed: {again:?}");
    assert_eq!(post_pdf(&edge.url, &again[0]).await, 400);
    let shown = admin(&state, &["account", "show", "--account", "acme"]).join("\n");
    assert!(shown.contains("webhook secret: set") && !shown.contains(secret.as_str()), "{shown}");
}

/// A webhook dead-lettered on the edge, listed and replayed through `tailpdf-admin
/// dead-letters`: the receiver gets it with its own webhook-id, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_through_the_edge() {
    const ADMIN_SECRET: &str = "admin-test-secret";
    let dir = tempfile::tempdir().unwrap();
    let options = EdgeOptions::new("http://127.0.0.1:9").var("ADMIN_SECRET", ADMIN_SECRET);
    let mut edge = Edge::spawn(dir.path(), free_port(), &options);
    edge.wait_ready().await;
    let receiver = Receiver::start(0).await;

    // What the webhooks-dlq consumer keeps after the last retry (dead_letters.rs).
    let mut job = JobRecord::new(JobId::generate_at(1_764_633_600_000), ACCOUNT, now());
    job.apply(&JobEvent::Failed { at: now(), error_message: String::from("x") });
    let payload = WebhookPayload::for_job(&job).unwrap();
    let webhook_id = payload.webhook_id();
    let message = WebhookMessage {
        account: ACCOUNT.into(),
        url: SecretUrl::new(&receiver.url),
        payload: payload.into(),
        attempt: 4,
    };
    let letter = serde_json::to_string(&DeadLetter { message, dead_at: now() }).unwrap();
    let file = dir.path().join("letter.json");
    std::fs::write(&file, letter).unwrap();
    let bin = root().join("node_modules/.bin");
    let put = Command::new(bin.join("wrangler"))
        .args(["kv", "key", "put", &format!("dead:{webhook_id}"), "--binding", "JOBS", "--local"])
        .arg("--persist-to")
        .arg(dir.path().join("wrangler"))
        .arg("--path")
        .arg(&file)
        .current_dir(root())
        .env("WRANGLER_SEND_METRICS", "false")
        .output()
        .unwrap();
    assert!(put.status.success(), "{put:?}");

    let edge_args = |more: &[&str]| {
        ["dead-letters", "--edge-url", &edge.url, "--admin-secret", ADMIN_SECRET]
            .iter()
            .chain(more)
            .map(|a| (*a).to_owned())
            .collect::<Vec<_>>()
    };
    let listed = run_admin(edge_args(&["list"]));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(
        listed[0].starts_with(&webhook_id) && listed[0].contains("render.failed"),
        "{listed:?}"
    );
    assert!(listed[0].contains("4 attempts"), "{listed:?}");

    let replayed = run_admin(edge_args(&["replay", "--all"]));
    assert_eq!(replayed, [format!("replayed {webhook_id}")]);
    wait_until("the replayed webhook", Duration::from_secs(30), async || {
        !receiver.all().is_empty()
    })
    .await;
    let got = receiver.all();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), webhook_id);
    assert!(run_admin(edge_args(&["list"])).is_empty(), "replayed: no longer kept");
}

fn now() -> Timestamp {
    Timestamp::from_unix(tailpdf_e2e::now()).unwrap()
}
