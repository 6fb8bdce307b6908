//! `tailpdf-admin` against the built Worker under `wrangler dev --local`, writing to the same
//! local KV while it runs: a created key works, its account's limits reach the edge, a revoked
//! or rotated-out key gets 401 at once.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use std::{path::Path, process::Command, time::Duration};

use tailpdf_e2e::{
    free_port, root,
    stack::{Edge, EdgeOptions},
};

/// Runs `tailpdf-admin` on `wrangler dev`'s storage; its stdout lines (keys, secrets).
fn admin(state: &Path, args: &[&str]) -> Vec<String> {
    let bin = root().join("node_modules/.bin");
    let out = Command::new(env!("CARGO_BIN_EXE_tailpdf-admin"))
        .args(args)
        .arg("--persist-to")
        .arg(state)
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
