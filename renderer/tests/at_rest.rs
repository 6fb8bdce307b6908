//! At rest, Chromium gives back what finished documents left: garbage collected once renders
//! stop for `--rest-after`, and warm contexts let go (engine::rest).
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::time::{Duration, Instant};

use common::{engine_config, spec};
use serde_json::json;
use tailpdf_renderer::{
    engine::{
        schedule::{Lane, Requester},
        Engine,
    },
    measure,
};

const SCRIPTED: &str = "<p>scripted</p><script>document.title = 'x';</script>";

async fn engine(rest_after: Duration) -> (Engine, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut cfg = engine_config("http://127.0.0.1:9/", cache.path());
    cfg.tabs = Some(1);
    cfg.rest_after = rest_after;
    (Engine::start(cfg).await.unwrap(), cache)
}

async fn wait_collections(engine: &Engine, at_least: u64, limit: Duration) -> u64 {
    let started = Instant::now();
    while engine.stats().rest_collections < at_least && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.stats().rest_collections
}

/// Documents leave garbage behind in Chromium's long-lived pages (the Tailwind compiler's
/// generations, the shared tabs' documents) that V8 keeps until something pushes it; at rest
/// the engine has it collected, once.
#[tokio::test]
async fn garbage_of_finished_documents_is_collected_at_rest() {
    let (engine, _cache) = engine(Duration::from_secs(2)).await;
    // The warm-up's own quiet spell may end in a collection: let it pass first.
    let before = wait_collections(&engine, 1, Duration::from_secs(4)).await;
    let who = Requester::new("acct-busy", Lane::Job);
    for i in 0..60 {
        // Classes of their own: CSS generated anew for each.
        let content = format!(
            "<div class=\"p-[{i}px] m-[{i}px] text-[{i}px] bg-[#{i:06x}] grid-cols-[{i}fr_1fr]\">\
             document {i}</div>{}",
            "<p class=\"text-sm font-bold\">line</p>".repeat(200)
        );
        engine.render_for(&spec(json!({ "content": content })), &who).await.unwrap();
    }
    // V8's heaps are small by then; what it frees is native memory it held for them (seen:
    // 569 → 498 MiB of the Chromium tree's PSS).
    let pid = engine.browser_pid().await.unwrap();
    let held = measure::tree_pss_kib(pid);
    let collections = wait_collections(&engine, before + 1, Duration::from_secs(10)).await;
    assert_eq!(collections, before + 1, "no collection at rest");
    let after = measure::tree_pss_kib(pid);
    assert!(
        held > after + 16 * 1024,
        "Chromium's PSS was {} MiB before and {} MiB after",
        held >> 10,
        after >> 10
    );
    // Once per quiet spell.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(engine.stats().rest_collections, before + 1);
    engine.shutdown(Duration::from_secs(5)).await;
}

/// `--rest-after 0`: never.
#[tokio::test]
async fn rest_after_zero_never_collects() {
    let (engine, _cache) = engine(Duration::ZERO).await;
    engine.render(&spec(json!({ "content": SCRIPTED }))).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(engine.stats().rest_collections, 0);
    engine.shutdown(Duration::from_secs(5)).await;
}
