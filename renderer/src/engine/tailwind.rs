//! Tailwind CSS for exactly the classes a document uses, from the real Tailwind v4 compiler.
//!
//! The compiler (the pinned `tailwindcss` npm package, bundled by build.rs) runs in a pool of
//! workers of one long-lived page of the renderer's own Chromium (assets/compiler-pool.js): a
//! worker per tab, so renders never wait for each other's CSS, and a generation past
//! `--compiler-timeout` is stopped by terminating its worker. Answers are memoized by class set
//! and config, so a repeated document costs a hash lookup.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use chromiumoxide::Page;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{cdp::evaluate, lru::ByteLru};
use crate::error::{LimitExceeded, RenderError};

/// The compiler bundle: defines `globalThis.__tailpdfTailwind`, and answers requests when it
/// runs in a worker.
pub const COMPILER_BUNDLE: &str = include_str!(concat!(env!("OUT_DIR"), "/tailwind-compiler.js"));

/// The compiler page's pool of workers: defines `globalThis.__tailpdfCompilers`.
const POOL: &str = include_str!("../../assets/compiler-pool.js");

/// The Tailwind version the bundle was built from (package-lock.json pins it).
pub const TAILWIND_VERSION: &str = "4.3.5";

/// Bytes of generated CSS the memo keeps.
const MEMO_BYTES: u64 = 64 << 20;

/// Beyond the compiler's own deadline, how long the page may take to answer at all before it
/// counts as hung.
const PAGE_GRACE: Duration = Duration::from_secs(5);

/// Memo of generated CSS by (class set, config), bounded in bytes.
pub struct CssMemo {
    inner: Mutex<ByteLru<[u8; 32], Arc<str>>>,
}

impl Default for CssMemo {
    fn default() -> Self {
        Self { inner: Mutex::new(ByteLru::new(MEMO_BYTES)) }
    }
}

impl CssMemo {
    pub fn get(&self, key: &[u8; 32]) -> Option<Arc<str>> {
        self.lock().get(key)
    }

    pub fn insert(&self, key: [u8; 32], css: Arc<str>) {
        let size = css.len() as u64;
        self.lock().insert(key, css, size);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByteLru<[u8; 32], Arc<str>>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The memo key: a hash of the config as JSON (serde_json sorts object keys) and the sorted
/// classes, in an encoding no two different inputs share ([`key_encoding`]).
pub fn memo_key(classes: &BTreeSet<String>, config_json: &str) -> [u8; 32] {
    Sha256::digest(key_encoding(classes, config_json)).into()
}

/// What the key's encoding starts with: the kind of key and its version.
const KEY_TAG: &[u8] = b"tailpdf-css-memo/2\n";

/// The bytes [`memo_key`] hashes: every field after its length (no separator, which a class
/// or a config could hold, counts), and the number of classes. A decoder gets the input back
/// (the tests have one), so different inputs are different bytes.
fn key_encoding(classes: &BTreeSet<String>, config_json: &str) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = KEY_TAG.to_vec();
    field(&mut out, config_json.as_bytes());
    out.extend_from_slice(&(classes.len() as u64).to_le_bytes());
    for class in classes {
        field(&mut out, class.as_bytes());
    }
    out
}

/// The config as the compiler takes it: JSON text, empty for none.
pub fn config_json(config: Option<&Map<String, Value>>) -> String {
    config.map(|c| Value::Object(c.clone()).to_string()).unwrap_or_default()
}

/// Loads the pool into `page` and starts `workers` compilers (once per browser).
pub(crate) async fn install(
    page: &Page,
    workers: usize,
    timeout: Duration,
) -> Result<(), RenderError> {
    static BUNDLE_LITERAL: OnceLock<String> = OnceLock::new();
    let bundle =
        BUNDLE_LITERAL.get_or_init(|| Value::String(COMPILER_BUNDLE.to_owned()).to_string());
    let expression = format!("{POOL};\n__tailpdfCompilers.start({bundle}, {workers})");
    let loaded = evaluate(page, expression, timeout, "loading the Tailwind compiler").await?;
    match loaded.exception_details {
        Some(ex) => {
            Err(RenderError::Browser(format!("the Tailwind compiler did not load: {}", ex.text)))
        }
        None => Ok(()),
    }
}

/// Has every compiler worker of `page` load its bundle and generate a little CSS now, all at
/// once, rather than in the first renders. Answers how many did.
pub(crate) async fn warm_up(page: &Page, timeout: Duration) -> Result<usize, RenderError> {
    let expression = format!("__tailpdfCompilers.warmUp({})", timeout.as_millis());
    let warmed =
        evaluate(page, expression, timeout + PAGE_GRACE, "warming the Tailwind compiler").await?;
    if let Some(ex) = warmed.exception_details {
        return Err(RenderError::Browser(format!("the Tailwind compiler failed: {}", ex.text)));
    }
    Ok(warmed.result.value.and_then(|v| v.as_u64()).unwrap_or(0) as usize)
}

/// How many of the compiler page's workers are idle and have compiled once.
#[cfg(feature = "testing")]
pub(crate) async fn warm_workers(page: &Page) -> usize {
    let expression = String::from("__tailpdfCompilers.stats().warm");
    evaluate(page, expression, Duration::from_secs(5), "the Tailwind compiler")
        .await
        .ok()
        .and_then(|r| r.result.value)
        .and_then(|v| v.as_u64())
        .unwrap_or(0) as usize
}

/// The compiler page of one Chromium and the limits of one generation.
pub(crate) struct Compiler<'a> {
    pub(crate) page: &'a Page,
    pub(crate) timeout: Duration,
    pub(crate) max_css_bytes: u64,
}

#[derive(Deserialize)]
struct Answer {
    css: Option<String>,
    error: Option<String>,
    #[serde(default)]
    message: String,
}

impl Compiler<'_> {
    /// CSS for `classes` under `config_json`, memoized when `keep` (a document sent with
    /// `X-No-Store` leaves nothing behind; it may still use what others left). A page that does
    /// not answer at all (hung) is a [`RenderError::Browser`] its caller answers by replacing
    /// Chromium.
    pub(crate) async fn css(
        &self,
        memo: &CssMemo,
        classes: &BTreeSet<String>,
        config_json: &str,
        keep: bool,
    ) -> Result<Arc<str>, RenderError> {
        let key = memo_key(classes, config_json);
        if let Some(css) = memo.get(&key) {
            return Ok(css);
        }
        let classes_json = serde_json::to_string(classes).unwrap_or_else(|_| String::from("[]"));
        let config_literal = Value::String(config_json.to_owned()).to_string();
        let expression = format!(
            "__tailpdfCompilers.css({classes_json}, {config_literal}, {}, {})",
            self.timeout.as_millis(),
            self.max_css_bytes
        );
        let answer =
            evaluate(self.page, expression, self.timeout + PAGE_GRACE, "the Tailwind compiler")
                .await?;
        if let Some(ex) = answer.exception_details {
            return Err(RenderError::Browser(format!("the Tailwind compiler failed: {}", ex.text)));
        }
        let answer: Answer =
            answer.result.value.and_then(|v| serde_json::from_value(v).ok()).ok_or_else(|| {
                RenderError::Browser(String::from("the Tailwind compiler returned no CSS"))
            })?;
        let css: Arc<str> = match (answer.css, answer.error.as_deref()) {
            (Some(css), _) => css.into(),
            (None, Some("config")) => {
                let first_line = answer.message.lines().next().unwrap_or_default().to_owned();
                return Err(RenderError::BadInput(format!(
                    "`config` was refused by Tailwind CSS {TAILWIND_VERSION}: {first_line}"
                )));
            }
            (None, Some("timeout")) => {
                return Err(LimitExceeded::CompilerTime(self.timeout).into());
            }
            (None, Some("too_large")) => {
                return Err(LimitExceeded::CssBytes(self.max_css_bytes).into());
            }
            (None, _) => {
                return Err(RenderError::Browser(format!(
                    "the Tailwind compiler failed: {}",
                    answer.message
                )));
            }
        };
        if keep {
            memo.insert(key, css.clone());
        }
        Ok(css)
    }
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
    fn no_separator_a_class_or_config_may_hold_joins_two_keys() {
        // The adversarial round's attack: one class holding NULs, shaped like another
        // document's whole class list.
        let victim = set(&["bg-red-500", "border", "p-4"]);
        let attacker = set(&["bg-red-500\u{0}border\u{0}p-4"]);
        assert_ne!(memo_key(&victim, ""), memo_key(&attacker, ""));
        // The config's end and the first class's start.
        assert_ne!(memo_key(&set(&["y"]), "x"), memo_key(&set(&[]), "x\u{0}y"));
        assert_ne!(memo_key(&set(&["", "a"]), ""), memo_key(&set(&["a"]), ""));
    }

    proptest::proptest! {
        /// The bytes hashed are an encoding that decodes back to the (config, classes) it was
        /// made from: two different inputs never hash the same bytes.
        #[test]
        fn the_key_encoding_decodes_back_to_its_input(
            config in "(?s).{0,40}",
            classes in proptest::collection::btree_set("(?s).{0,12}", 0..8),
        ) {
            let encoded = key_encoding(&classes, &config);
            proptest::prop_assert_eq!(decode_key(&encoded), Some((config, classes)));
        }

        /// Inputs made of few letters, NULs and spaces (where collisions were found): different
        /// inputs, different keys.
        #[test]
        fn different_inputs_give_different_keys(
            a in ("[ab\\x00]{0,4}", proptest::collection::btree_set("[ab\\x00 ]{0,4}", 0..4)),
            b in ("[ab\\x00]{0,4}", proptest::collection::btree_set("[ab\\x00 ]{0,4}", 0..4)),
        ) {
            proptest::prop_assume!(a != b);
            proptest::prop_assert_ne!(memo_key(&a.1, &a.0), memo_key(&b.1, &b.0));
        }
    }

    /// The inverse of [`key_encoding`], for the property test.
    fn decode_key(mut bytes: &[u8]) -> Option<(String, BTreeSet<String>)> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
            *bytes = rest;
            Some(head)
        }
        fn number(bytes: &mut &[u8]) -> Option<usize> {
            usize::try_from(u64::from_le_bytes(take(bytes, 8)?.try_into().ok()?)).ok()
        }
        fn text(bytes: &mut &[u8]) -> Option<String> {
            let n = number(bytes)?;
            String::from_utf8(take(bytes, n)?.to_vec()).ok()
        }
        if take(&mut bytes, KEY_TAG.len())? != KEY_TAG {
            return None;
        }
        let config = text(&mut bytes)?;
        let count = number(&mut bytes)?;
        let classes = (0..count).map(|_| text(&mut bytes)).collect::<Option<BTreeSet<_>>>()?;
        bytes.is_empty().then_some((config, classes))
    }

    #[test]
    fn memo_is_bounded_in_bytes() {
        let memo = CssMemo::default();
        let big: Arc<str> = "x".repeat(1 << 20).into();
        for i in 0..100 {
            memo.insert(memo_key(&set(&[&i.to_string()]), ""), big.clone());
        }
        assert_eq!(memo.len(), (MEMO_BYTES >> 20) as usize);
        assert!(memo.get(&memo_key(&set(&["0"]), "")).is_none());
        assert!(memo.get(&memo_key(&set(&["99"]), "")).is_some());
    }

    #[test]
    fn config_json_is_canonical() {
        let a: Map<String, Value> = serde_json::from_str(r#"{"theme":{"b":1,"a":2}}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"theme":{"a":2,"b":1}}"#).unwrap();
        assert_eq!(config_json(Some(&a)), config_json(Some(&b)));
        assert_eq!(config_json(None), "");
    }
}
