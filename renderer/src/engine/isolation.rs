//! Which documents may share a tab, decided so that a wrong guess costs speed, never isolation.
//!
//! Documents render in one of two ways:
//! - **shared**: a reused tab of one long-lived browser context with script execution turned
//!   off by CDP (`Emulation.setScriptExecutionDisabled`), so nothing of a document can run and
//!   nothing can stay behind for the next one; the tab's navigations and frames are refused;
//! - **fresh**: a browser context of its own (its own renderer process, storage, cache, and
//!   service workers), made ahead of time and thrown away after the render.
//!
//! A quick lexical look ([`needs_scripts`]) sends documents that plainly run code to a fresh
//! context. Everything else goes to a shared tab, where the parsed DOM is inspected
//! ([`INSPECT`]): a document that turns out to want scripts (a handler the lexical look missed,
//! a frame, a `<noscript>`) is rendered again in a fresh context. Either way no script of any
//! document ever runs where another's will.

use std::collections::BTreeSet;

use serde::Deserialize;

/// Whether `content` plainly runs code, navigates or embeds other documents: then it goes to
/// a fresh context at once, instead of being found out in a shared tab. Errs on the side of
/// yes; a miss is caught by [`INSPECT`].
pub fn needs_scripts(content: &str) -> bool {
    let lower = content.to_ascii_lowercase();
    const MARKERS: [&str; 10] = [
        "<script",
        "javascript:",
        "http-equiv",
        "<iframe",
        "<frame",
        "<object",
        "<embed",
        "<portal",
        "<fencedframe",
        "<noscript",
    ];
    MARKERS.iter().any(|m| lower.contains(m)) || has_event_handler_attribute(&lower)
}

/// `onload=`, `/onclick =`, ...: "on" + letters + optional space + "=", after any character
/// that can end an attribute name or the one before (HTML's separators include form feed).
fn has_event_handler_attribute(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(i) = lower[from..].find("on") {
        let start = from + i;
        from = start + 2;
        let separated = start > 0 && {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        };
        if !separated {
            continue;
        }
        let mut j = start + 2;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'-') {
            j += 1;
        }
        if j == start + 2 {
            continue;
        }
        while j < bytes.len() && (bytes[j].is_ascii_whitespace() || bytes[j] == 0x0c) {
            j += 1;
        }
        if bytes.get(j) == Some(&b'=') {
            return true;
        }
    }
    false
}

/// Run on the parsed document (by CDP, so it runs while the page's own scripts cannot): its
/// class names (including inside open shadow roots; unless `withClasses` is false) after its
/// fonts if `waitFonts`, and why it needs scripts if it does: a script element, an event
/// handler, a `javascript:` URL, a frame or plugin, a `<noscript>`, or `<meta http-equiv>`.
pub(crate) const INSPECT: &str = r#"(async (waitFonts, withClasses = true) => {
  if (waitFonts) { void document.body?.offsetHeight; await document.fonts.ready; }
  const classes = new Set();
  // "javascript:" with any control characters or spaces around its letters, in any case (a
  // test that gives up at the first letter that does not fit, unlike rewriting every value).
  const JS_URL = new RegExp('^' + [...'javascript:'].map((c) => '[\\u0000-\\u0020]*' + c).join(''), 'i');
  let why = null;
  const EMBEDS = new Set(['script', 'iframe', 'frame', 'frameset', 'object', 'embed', 'portal',
    'fencedframe', 'noscript', 'applet']);
  const judge = (el) => {
    const name = el.localName;
    if (EMBEDS.has(name)) return `<${name}>`;
    if (name === 'meta' && el.hasAttribute('http-equiv')) return '<meta http-equiv>';
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) return `the ${a.name} handler`;
      if (JS_URL.test(a.value)) {
        return `a javascript: URL in ${a.name}`;
      }
    }
    return null;
  };
  const visit = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (withClasses) for (const c of el.classList) classes.add(c);
      if (why === null) why = judge(el);
      if (el.shadowRoot) visit(el.shadowRoot);
    }
  };
  visit(document);
  return { classes: [...classes], why };
})"#;

/// What [`INSPECT`] found.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Inspection {
    pub(crate) classes: BTreeSet<String>,
    /// Why the document needs scripts, if it does.
    pub(crate) why: Option<String>,
}

/// [`INSPECT`] as an expression for `Runtime.evaluate`.
pub(crate) fn inspect_expression(wait_fonts: bool) -> String {
    format!("{INSPECT}({wait_fonts})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_that_plainly_need_scripts() {
        for active in [
            "<script>x()</script>",
            "<SCRIPT src=a.js>",
            "<img src=x onerror=alert(1)>",
            "<img src=x\x0conerror=alert(1)>",
            "<img src=\"x\"onerror=\"a()\">",
            "<body onload = \"go()\">",
            "<svg><a/onclick='x'>",
            "<svg><animate onbegin=x>",
            "<a href=\"JavaScript:void(0)\">",
            "<meta http-equiv=\"refresh\" content=\"0;url=/\">",
            "<iframe srcdoc=\"x\">",
            "<noscript><p>no</p></noscript>",
            "<div on-x=\"\" ondata-foo=y>",
        ] {
            assert!(needs_scripts(active), "{active:?}");
        }
        for passive in [
            "<p class=\"font-bold\">Monday online: on time</p>",
            "<div class=\"p-4\" data-on=\"x\">",
            "<button>Click on=me</button>",
            "<p>Version 2.on</p>",
            "",
        ] {
            assert!(!needs_scripts(passive), "{passive:?}");
        }
    }

    #[test]
    fn inspections_parse() {
        let i: Inspection =
            serde_json::from_str(r#"{"classes":["p-4","flex"],"why":"the onerror handler"}"#)
                .unwrap();
        assert_eq!(i.classes.len(), 2);
        assert_eq!(i.why.as_deref(), Some("the onerror handler"));
        assert!(inspect_expression(true).ends_with("})(true)"));
    }
}
