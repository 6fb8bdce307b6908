//! Tailwind CSS for exactly the classes a document uses, from the real Tailwind v4 compiler.
//!
//! The compiler (the pinned `tailwindcss` npm package, bundled by build.rs) runs in a
//! long-lived page of the renderer's own Chromium; its answers are memoized by class set and
//! config, so a repeated document costs a hash lookup.

use std::{
    collections::{BTreeSet, HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use chromiumoxide::Page;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{cdp::evaluate, error::RenderError};

/// The compiler bundle: defines `globalThis.__tailpdfTailwind`.
pub const COMPILER_BUNDLE: &str = include_str!(concat!(env!("OUT_DIR"), "/tailwind-compiler.js"));

/// The Tailwind version the bundle was built from (package-lock.json pins it).
pub const TAILWIND_VERSION: &str = "4.3.5";

const MEMO_ENTRIES: usize = 2048;

/// Memo of generated CSS by (class set, config).
pub struct CssMemo {
    inner: Mutex<MemoInner>,
}

#[derive(Default)]
struct MemoInner {
    map: HashMap<[u8; 32], Arc<str>>,
    order: VecDeque<[u8; 32]>,
}

impl Default for CssMemo {
    fn default() -> Self {
        Self { inner: Mutex::new(MemoInner::default()) }
    }
}

impl CssMemo {
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<str>> {
        self.inner.lock().ok()?.map.get(key).cloned()
    }

    pub fn insert(&self, key: [u8; 32], css: Arc<str>) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if inner.map.insert(key, css).is_none() {
            inner.order.push_back(key);
        }
        while inner.order.len() > MEMO_ENTRIES {
            if let Some(old) = inner.order.pop_front() {
                inner.map.remove(&old);
            }
        }
    }

    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.map.clear();
            inner.order.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The memo key: the config as JSON (serde_json sorts object keys) and the sorted classes.
pub fn memo_key(classes: &BTreeSet<String>, config_json: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(config_json.as_bytes());
    for c in classes {
        h.update([0]);
        h.update(c.as_bytes());
    }
    h.finalize().into()
}

/// The config as the compiler takes it: JSON text, empty for none.
pub fn config_json(config: Option<&Map<String, Value>>) -> String {
    config.map(|c| Value::Object(c.clone()).to_string()).unwrap_or_default()
}

/// Loads the compiler into `page` (once per browser).
pub async fn install(page: &Page, timeout: Duration) -> Result<(), RenderError> {
    let loaded =
        evaluate(page, COMPILER_BUNDLE.to_owned(), timeout, "loading the Tailwind compiler")
            .await?;
    match loaded.exception_details {
        Some(ex) => {
            Err(RenderError::Browser(format!("the Tailwind compiler did not load: {}", ex.text)))
        }
        None => Ok(()),
    }
}

/// CSS for `classes` under `config_json`, memoized.
pub async fn css(
    page: &Page,
    memo: &CssMemo,
    classes: &BTreeSet<String>,
    config_json: &str,
    timeout: Duration,
) -> Result<Arc<str>, RenderError> {
    let key = memo_key(classes, config_json);
    if let Some(css) = memo.get(&key) {
        return Ok(css);
    }
    let classes_json = serde_json::to_string(classes).unwrap_or_else(|_| String::from("[]"));
    let config_literal = Value::String(config_json.to_owned()).to_string();
    let expression = format!("__tailpdfTailwind.css({classes_json}, {config_literal})");
    let answer = evaluate(page, expression, timeout, "the Tailwind compiler").await?;
    if let Some(ex) = &answer.exception_details {
        // The compiler only throws on what the request gave it: the config.
        let detail = ex
            .exception
            .as_ref()
            .and_then(|e| e.description.clone())
            .unwrap_or_else(|| ex.text.clone());
        let first_line = detail.lines().next().unwrap_or_default().to_owned();
        return Err(RenderError::BadInput(format!(
            "`config` was refused by Tailwind CSS {TAILWIND_VERSION}: {first_line}"
        )));
    }
    let css: Arc<str> = match answer.result.value {
        Some(Value::String(s)) => s.into(),
        _ => {
            return Err(RenderError::Browser(String::from("the Tailwind compiler returned no CSS")))
        }
    };
    memo.insert(key, css.clone());
    Ok(css)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_bundle_defines_the_entry_point() {
        assert!(COMPILER_BUNDLE.contains("__tailpdfTailwind"));
        assert!(COMPILER_BUNDLE.len() > 100_000, "the bundle should carry Tailwind's stylesheet");
    }

    #[test]
    fn memo_keys_depend_on_classes_and_config_only() {
        let a = memo_key(&set(&["p-4", "flex"]), "");
        assert_eq!(a, memo_key(&set(&["flex", "p-4"]), ""));
        assert_ne!(a, memo_key(&set(&["flex"]), ""));
        assert_ne!(a, memo_key(&set(&["p-4", "flex"]), "{}"));
        // Class boundaries count: ["ab"] is not ["a", "b"].
        assert_ne!(memo_key(&set(&["ab"]), ""), memo_key(&set(&["a", "b"]), ""));
    }

    #[test]
    fn memo_is_bounded() {
        let memo = CssMemo::default();
        for i in 0..(MEMO_ENTRIES + 10) {
            memo.insert(memo_key(&set(&[&i.to_string()]), ""), Arc::from("x"));
        }
        assert_eq!(memo.len(), MEMO_ENTRIES);
        assert!(memo.get(&memo_key(&set(&["0"]), "")).is_none());
        assert!(memo.get(&memo_key(&set(&[&(MEMO_ENTRIES + 9).to_string()]), "")).is_some());
    }

    #[test]
    fn config_json_is_canonical() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"theme":{"b":1,"a":2}}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"theme":{"a":2,"b":1}}"#).unwrap();
        assert_eq!(config_json(Some(&a)), config_json(Some(&b)));
        assert_eq!(config_json(None), "");
    }
}
