//! Our Tailwind CSS against the pinned Tailwind v4 CLI: the same corpus styled by each, every
//! element's computed style compared in Chromium. Any difference fails.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::Duration,
};

use chromiumoxide::{cdp::js_protocol::runtime::EvaluateParams, Page};
use serde_json::{json, Value};
use tailpdf_renderer::engine::{document, BareBrowser, Engine};

const CORPUS: &str = include_str!("fixtures/tailwind-corpus.html");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The CLI's CSS for `html` (and `config`), scanning only that file.
fn cli_css(html: &str, config: Option<&Value>) -> String {
    // Inside the workspace, so that `@import "tailwindcss"` resolves to its node_modules.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::create_dir_all(dir.path().join("css")).unwrap();
    std::fs::write(dir.path().join("corpus.html"), html).unwrap();
    let mut input =
        String::from("@import \"tailwindcss\" source(none);\n@source \"../corpus.html\";\n");
    if let Some(config) = config {
        std::fs::write(
            dir.path().join("tailwind.config.js"),
            format!("module.exports = {config};\n"),
        )
        .unwrap();
        input.push_str("@config \"../tailwind.config.js\";\n");
    }
    std::fs::write(dir.path().join("css/input.css"), input).unwrap();
    let bin = workspace().join("node_modules/.bin");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = std::process::Command::new(bin.join("tailwindcss"))
        .current_dir(dir.path())
        .env("PATH", path)
        .args(["-i", "css/input.css", "-o", "out.css"])
        .output()
        .expect("the Tailwind CLI is installed by scripts/setup.sh (npm ci)");
    assert!(out.status.success(), "tailwindcss failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(dir.path().join("out.css")).unwrap()
}

async fn eval(page: &Page, expression: &str) -> Value {
    let params = EvaluateParams::builder()
        .expression(expression)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .unwrap();
    let r = page.execute(params).await.unwrap();
    assert!(r.result.exception_details.is_none(), "{:?}", r.result.exception_details);
    r.result.result.value.unwrap_or(Value::Null)
}

/// Every element's (and its pseudo-elements') computed style, by position; animations are
/// stopped at their start so that time does not count as a difference.
const COMPUTED: &str = "(() => { document.getAnimations().forEach(a => { a.pause(); a.currentTime = 0; }); \
  const out = []; const els = document.body.querySelectorAll('*'); \
  els.forEach((el, i) => { for (const pseudo of [null, '::before', '::after', '::marker', '::placeholder']) { \
    const cs = getComputedStyle(el, pseudo); const props = {}; \
    for (let j = 0; j < cs.length; j++) { const p = cs[j]; props[p] = cs.getPropertyValue(p); } \
    out.push([i + ':' + el.tagName + (pseudo || ''), props]); } }); return out; })()";

async fn computed(
    page: &Page,
    html: &str,
    css: &str,
) -> Vec<(String, serde_json::Map<String, Value>)> {
    page.set_content(format!(
        "<!DOCTYPE html><html><head><style>{css}</style></head><body>{html}</body></html>"
    ))
    .await
    .unwrap();
    let v = eval(page, COMPUTED).await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_owned(), e[1].as_object().unwrap().clone()))
        .collect()
}

async fn dom_classes(page: &Page, html: &str) -> BTreeSet<String> {
    page.set_content(format!("<!DOCTYPE html><html><body>{html}</body></html>")).await.unwrap();
    let v = eval(
        page,
        "[...new Set([...document.querySelectorAll('[class]')].flatMap(e => [...e.classList]))]",
    )
    .await;
    v.as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
}

async fn compare(engine: &Engine, page: &Page, html: &str, config: Option<Value>) -> usize {
    let mut classes = dom_classes(page, html).await;
    classes.extend(document::class_candidates(html));
    let config_map = config.as_ref().map(|c| c.as_object().unwrap().clone());
    let ours = engine.tailwind_css(&classes, config_map.as_ref()).await.unwrap();
    let theirs = cli_css(html, config.as_ref());

    let with_ours = computed(page, html, &ours).await;
    let with_theirs = computed(page, html, &theirs).await;
    let unstyled = computed(page, html, "").await;
    assert_eq!(with_ours.len(), with_theirs.len());

    let mut differences = Vec::new();
    for ((key, a), (_, b)) in with_ours.iter().zip(&with_theirs) {
        for (prop, value) in b {
            if a.get(prop) != Some(value) {
                differences.push(format!("{key} {prop}: ours {:?}, CLI {value}", a.get(prop)));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences, first ones:\n{}",
        differences.len(),
        differences[..differences.len().min(20)].join("\n")
    );

    // The comparison means something only if the CSS styled the corpus.
    let styled = with_ours.iter().zip(&unstyled).filter(|((_, a), (_, b))| a != b).count();
    assert!(styled * 10 >= with_ours.len() * 9, "only {styled} of {} styled", with_ours.len());
    classes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computed_styles_match_the_tailwind_cli() {
    let cache = tempfile::tempdir().unwrap();
    let engine =
        Engine::start(common::engine_config("http://127.0.0.1:9/", cache.path())).await.unwrap();
    let bare = BareBrowser::launch(&tailpdf_renderer::config::EngineConfig::defaults().chromium)
        .await
        .unwrap();
    let page = bare.new_page().await.unwrap();

    let classes = compare(&engine, &page, CORPUS, None).await;
    assert!(classes >= 150, "the corpus should use at least 150 utilities, has {classes}");

    let config = json!({"theme": {"extend": {
        "colors": {"brand": {"DEFAULT": "#0f766e", "light": "#5eead4"}},
        "fontFamily": {"display": ["Inter", "sans-serif"]},
        "spacing": {"128": "32rem"},
        "screens": {"xs": "480px"}
    }}, "darkMode": "class"});
    let themed = "<div class=\"dark\"><p class=\"text-brand bg-brand-light/50 font-display p-128 xs:flex dark:text-white border-brand\">x</p></div>";
    compare(&engine, &page, &format!("{themed}{CORPUS}"), Some(config)).await;

    let replaced =
        json!({"theme": {"colors": {"ink": "#111111", "paper": "#fafafa"}}, "important": true});
    compare(
        &engine,
        &page,
        "<p class=\"text-ink bg-paper p-4 text-gray-700 font-bold\">x</p>",
        Some(replaced),
    )
    .await;

    drop(page);
    bare.close().await;
    engine.shutdown(Duration::from_secs(5)).await;
}
