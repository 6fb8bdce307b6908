//! Documents of one batch printed together: one page, one `printToPDF`, then one PDF per
//! document ([`super::split`]). Most of a print's cost is fixed, so a group of twenty costs far
//! less per document than twenty prints (BENCHMARKS.md, "Batches").
//!
//! Each document lives in a shadow root of its own, in a shared tab with scripts off:
//! - its markup is parsed into its root as a fragment, so nothing in it can close the root or
//!   reach the page around it; its own `<style>` elements apply inside its root only;
//! - its Tailwind CSS is adopted into its root (one constructed sheet per distinct class set);
//!   the `@property` registrations Tailwind relies on (ignored inside shadow roots) are the
//!   page's, and must agree between documents;
//! - its host starts on a new page, is a containing block for everything positioned in it
//!   and clips what it paints (`contain: paint`), so nothing drawn by one document lands on
//!   another's pages;
//! - before each host, a 1-px link to `https://tailpdf-split.invalid/{nonce}/{index}` marks
//!   the page where the document starts.
//!
//! Documents whose rendering a shadow root would change, or that could reach past it, are
//! rendered alone: those the markup shows ([`alone_reason`]), and those only the built page's
//! layout shows (positioned against their host, or drawn above or below it: [`BUILD`]'s
//! checks, then the group is built again without them). Those checks cost their walk over
//! every element, 2-3% of a group's time: the screen layout they read is one Chromium makes
//! for the print anyway (BENCHMARKS.md), the price of a group looking as its documents do
//! alone. Every document of a group that fails as a whole (a timeout, a budget crossed, a
//! marker missing) is rendered alone too: a document that fails, fails alone.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::Instant,
};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tailpdf_shared::{pdf_options::PdfOptions, postprocess::Metadata, RenderSpec};

use super::{
    document, isolation,
    problems::Problems,
    schedule::{Lane, Requester, Slot},
    split, tailwind, Engine, Rendered,
};
use crate::{
    error::{LimitExceeded, RenderError},
    postprocess,
};

/// What the marker links point at: `.invalid` never resolves, and no request is made for a
/// link anyway.
const MARKER_ORIGIN: &str = "https://tailpdf-split.invalid/";

/// The page's own CSS: hosts and markers, styled from outside every document (a document's
/// `:host` rules lose to these).
const HOST_CSS: &str = "html,body{margin:0;padding:0}\
.__tailpdf_mark{display:block;width:1px;height:1px;margin:0 0 -1px 0;padding:0;border:0;break-before:page}\
.__tailpdf_mark:first-child{break-before:auto}\
.__tailpdf_doc{display:flow-root;position:relative;overflow:clip;contain:paint;margin:0;padding:0}";

/// Builds the group page in the tab: `shell` (our head) first, then per document a marker and
/// a host whose shadow root gets the document's sheet and markup, then the parser closed, so
/// that the load event waits for every document's images. Then the DOM inspection.
const BUILD: &str = r#"(async (shell, sheets, docs, marker, inspect) => {
  document.open();
  document.write(shell);
  const made = sheets.map((text) => { const s = new CSSStyleSheet(); s.replaceSync(text); return s; });
  docs.forEach((d, i) => {
    const mark = document.createElement('a');
    mark.className = '__tailpdf_mark';
    mark.href = marker + i;
    const host = document.createElement('div');
    host.className = '__tailpdf_doc';
    // No element of its own in the PDF's tags: the document's are the Document's, as alone.
    host.setAttribute('role', 'none');
    document.body.append(mark, host);
    const root = host.attachShadow({ mode: 'open' });
    root.adoptedStyleSheets = [made[d.sheet]];
    root.innerHTML = d.html;
  });
  document.close();
  const seen = await inspect(false, false);
  // Documents that would not look as they do alone: positioned elements placed against their
  // host rather than the page (fixed, or absolute with no containing block of their own).
  const holds = (el) => {
    const s = getComputedStyle(el);
    return s.position !== 'static' || s.transform !== 'none' || s.filter !== 'none' ||
      /paint|layout|strict|content/.test(s.contain);
  };
  // Its own CSS could loosen its host (`:host`, `:scope`, `@scope`, however escaped: the
  // CSSOM has them plain) or load more (`@import`).
  const reaches = (root) => [...root.styleSheets].some((sheet) =>
    [...sheet.cssRules].some((rule) => /:host|:scope|@scope|@import/i.test(rule.cssText)));
  // A forced break before its first content: dropped alone, here it would follow the marker
  // and leave the document's first page blank.
  const forced = /^(page|left|right|recto|verso|always)$/;
  const inFlow = (el) => {
    const s = getComputedStyle(el);
    return s.display !== 'none' && s.position !== 'absolute' && s.position !== 'fixed' &&
      s.float === 'none';
  };
  const breaksFirst = (root) => {
    let parent = root;
    for (let depth = 0; depth < 64; depth++) {
      const first = [...parent.children].find(inFlow);
      if (!first) return false;
      const s = getComputedStyle(first);
      if (s.display !== 'contents' && forced.test(s.breakBefore)) return true;
      parent = first;
    }
    return false;
  };
  seen.misplaced = [];
  document.querySelectorAll('.__tailpdf_doc').forEach((host, i) => {
    if (reaches(host.shadowRoot) || breaksFirst(host.shadowRoot)) {
      seen.misplaced.push(i);
      return;
    }
    const box = host.getBoundingClientRect();
    for (const el of host.shadowRoot.querySelectorAll('*')) {
      // Drawn above or below its own box (a negative margin, a transform): its host's clip
      // would cut what alone would show.
      const r = el.getBoundingClientRect();
      if (r.height > 0 && (r.top < box.top - 1 || r.bottom > box.bottom + 1)) {
        seen.misplaced.push(i);
        break;
      }
      const position = getComputedStyle(el).position;
      if (position !== 'fixed' && position !== 'absolute') continue;
      let up = el.parentElement;
      while (up && !holds(up)) up = up.parentElement;
      if (position === 'fixed' || !up) { seen.misplaced.push(i); break; }
    }
  });
  return seen;
})"#;

/// Why `spec` must be rendered alone rather than in a group page, if it must.
pub fn alone_reason(spec: &RenderSpec) -> Option<&'static str> {
    let content = &spec.content;
    let options = &spec.pdf_options;
    // A group's print numbers its pages and applies ranges across all its documents.
    if options.display_header_footer == Some(true) {
        return Some("its header and footer would number the group's pages");
    }
    if options.page_ranges.as_deref().is_some_and(|r| !r.trim().is_empty()) {
        return Some("its page ranges would apply to the group's pages");
    }
    if isolation::needs_scripts(content) {
        return Some("it runs scripts");
    }
    if document::is_full_document(content) {
        return Some("it is a whole HTML document (its <html> and <body> would be lost)");
    }
    let lower = content.to_ascii_lowercase();
    // Rules a shadow root ignores (fonts, pages, registrations), that reach its host, or that
    // load what the page around it would share.
    const MARKERS: [(&str, &str); 7] = [
        (":host", "its CSS styles its host"),
        ("@font-face", "it declares fonts"),
        ("@import", "it imports stylesheets"),
        ("@page", "it sets page rules"),
        ("@property", "it registers properties"),
        ("<link", "it links stylesheets"),
        ("<base", "it sets a base URL"),
    ];
    if let Some((_, why)) = MARKERS.iter().find(|(m, _)| lower.contains(m)) {
        return Some(why);
    }
    // A link to an element of its own becomes a named destination alone; a shadow root's
    // elements are not found by it, so in a group the link would be dead.
    if has_fragment_link(&lower) {
        return Some("it links within itself");
    }
    // Alone, a fixed element repeats on every page of its document; in a group its host
    // holds it (so that it cannot reach other documents' pages), on the first page only.
    let classes = document::class_candidates(content);
    if has_fixed_position(&lower) || classes.iter().any(|c| utility(c) == "fixed") {
        return Some("it has fixed-position elements");
    }
    // Alone, the page's <html> and <body> are the document's; in a group they are not. A
    // selector that may match them (or reach elements through them) would style differently.
    let arbitrary = classes
        .iter()
        .filter(|c| c.contains('[') || c.contains('('))
        .map(|c| c.to_ascii_lowercase().replace('_', " "));
    if style_texts(&lower).any(|css| may_reach_root(&without_comments(css)))
        || arbitrary.into_iter().any(|c| may_reach_root(&c))
    {
        return Some("its CSS may style the page's <html>, <body> or :root");
    }
    None
}

/// What documents must share to be printed together: everything but their content and
/// metadata.
pub fn group_key(spec: &RenderSpec) -> [u8; 32] {
    #[derive(Serialize)]
    struct Shared<'a> {
        fonts: &'a [tailpdf_shared::fonts::FontSpec],
        config: &'a Option<serde_json::Map<String, serde_json::Value>>,
        pdf_options: PdfOptions,
        no_store: bool,
    }
    let shared = Shared {
        fonts: &spec.fonts,
        config: &spec.config,
        pdf_options: PdfOptions { metadata: None, ..spec.pdf_options.clone() },
        no_store: spec.no_store,
    };
    Sha256::digest(serde_json::to_vec(&shared).unwrap_or_default()).into()
}

/// An `<a>` or `<area>` whose `href` starts with `#`.
fn has_fragment_link(lower: &str) -> bool {
    lower.match_indices('<').any(|(at, _)| {
        let tag = &lower[at + 1..];
        let Some(rest) = tag.strip_prefix("area").or_else(|| tag.strip_prefix('a')) else {
            return false;
        };
        if !rest.starts_with(|c: char| c.is_ascii_whitespace() || c == '/') {
            return false;
        }
        let tag = &rest[..rest.find('>').unwrap_or(rest.len())];
        tag.match_indices("href").any(|(h, _)| {
            let value = tag[h + "href".len()..].trim_start();
            value.strip_prefix('=').is_some_and(|v| {
                v.trim_start().trim_start_matches(['"', '\'']).trim_start().starts_with('#')
            })
        })
    })
}

/// `position: fixed` anywhere (a style attribute or element, an arbitrary Tailwind property).
fn has_fixed_position(lower: &str) -> bool {
    lower.match_indices("position").any(|(at, _)| {
        let rest = lower[at + "position".len()..].trim_start();
        rest.strip_prefix(':').is_some_and(|v| v.trim_start().starts_with("fixed"))
    })
}

/// A Tailwind class without its variants (`print:md:fixed` → `fixed`).
fn utility(class: &str) -> &str {
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in class.char_indices() {
        match c {
            '[' | '(' => depth += 1,
            ']' | ')' => depth -= 1,
            ':' if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    class[start..].trim_start_matches('!').trim_end_matches('!')
}

/// The texts of the `<style>` elements of lowercased markup.
fn style_texts(lower: &str) -> impl Iterator<Item = &str> {
    lower.match_indices("<style").filter_map(move |(at, _)| {
        let open_end = at + lower[at..].find('>')? + 1;
        let close = lower[open_end..].find("</style").map_or(lower.len(), |j| open_end + j);
        Some(&lower[open_end..close])
    })
}

/// Whether a selector in `css` (lowercased) may match `<html>` or `<body>`: by name, `:root`,
/// `*`, or a pseudo-class that can match any element.
fn may_reach_root(css: &str) -> bool {
    const ANY: [&str; 14] = [
        "*", ":root", ":not(", ":is(", ":where(", ":has(", "-child", ":nth-", "-of-type", ":lang(",
        ":dir(", ":empty", ":scope", ":defined",
    ];
    ANY.iter().any(|t| css.contains(t)) || ["html", "body"].iter().any(|w| contains_word(css, w))
}

fn without_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(i) = rest.find("/*") {
        out.push_str(&rest[..i]);
        rest = rest[i + 2..].find("*/").map_or("", |j| &rest[i + 2 + j + 2..]);
    }
    out.push_str(rest);
    out
}

fn contains_word(text: &str, word: &str) -> bool {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_none_or(|c| !is_name(c));
        let after = text[at + word.len()..].chars().next().is_none_or(|c| !is_name(c));
        before && after
    })
}

/// `css` without its `@property` rules, and those rules by property name.
fn split_properties(css: &str) -> (String, Vec<(String, String)>) {
    let mut rest = String::with_capacity(css.len());
    let mut rules = Vec::new();
    let mut from = 0;
    while let Some(i) = css[from..].find("@property") {
        let start = from + i;
        let Some(end) = css[start..].find('}').map(|j| start + j + 1) else { break };
        rest.push_str(&css[from..start]);
        let rule = &css[start..end];
        let name = rule["@property".len()..].split('{').next().unwrap_or_default().trim();
        rules.push((name.to_owned(), rule.to_owned()));
        from = end;
    }
    rest.push_str(&css[from..]);
    (rest, rules)
}

/// A document of the group page, as the page script takes it.
#[derive(Serialize)]
struct PageDoc<'a> {
    html: &'a str,
    sheet: usize,
}

/// Why a group was not printed as one (its documents are then rendered alone).
#[derive(Debug)]
pub(crate) enum GroupFailure {
    /// Stop: the engine is shutting down.
    Fatal(RenderError),
    /// Render the documents alone.
    Alone(String),
    /// These documents (indexes in the group) would not render as they do alone: print the
    /// group without them.
    Without(Vec<usize>),
}

/// What the group page's script reports.
#[derive(Debug, Default, serde::Deserialize)]
struct Built {
    #[serde(flatten)]
    inspection: isolation::Inspection,
    #[serde(default)]
    misplaced: Vec<usize>,
}

impl From<RenderError> for GroupFailure {
    fn from(e: RenderError) -> Self {
        match e {
            RenderError::ShuttingDown => Self::Fatal(e),
            other => Self::Alone(other.to_string()),
        }
    }
}

impl Engine {
    /// Renders the documents of one batch, printing together those that may share a page
    /// (same options, [`alone_reason`] none), the others alone; one result per spec, in order.
    /// As nobody's in particular (tests, the benchmark): see [`Engine::render_group_for`].
    pub async fn render_group(&self, specs: &[RenderSpec]) -> Vec<Result<Rendered, RenderError>> {
        self.render_group_for(specs, &Requester::new("", Lane::Batch)).await
    }

    /// [`Engine::render_group`] for `who`: each group print and each document rendered alone
    /// waits for a slot of `who`'s.
    pub async fn render_group_for(
        &self,
        specs: &[RenderSpec],
        who: &Requester,
    ) -> Vec<Result<Rendered, RenderError>> {
        let mut results: Vec<Option<Result<Rendered, RenderError>>> =
            specs.iter().map(|_| None).collect();
        let mut alone = Vec::new();
        let mut together: BTreeMap<[u8; 32], Vec<usize>> = BTreeMap::new();
        let class_limit = self.inner.cfg.limits.classes;
        for (i, spec) in specs.iter().enumerate() {
            let over_limit = document::class_candidates(&spec.content).len() > class_limit;
            if over_limit || alone_reason(spec).is_some() {
                alone.push(i);
            } else {
                together.entry(group_key(spec)).or_default().push(i);
            }
        }
        for mut members in together.into_values() {
            let mut tries = 0;
            let printed = loop {
                if members.len() < 2 {
                    break None;
                }
                let docs: Vec<&RenderSpec> = members.iter().map(|i| &specs[*i]).collect();
                match self.print_group(&docs, who).await {
                    Err(GroupFailure::Without(out)) if tries == 0 => {
                        tries += 1;
                        let out: Vec<usize> =
                            out.iter().filter_map(|k| members.get(*k).copied()).collect();
                        tracing::debug!(
                            documents = out.len(),
                            "printing the group without documents placed differently there"
                        );
                        members.retain(|m| !out.contains(m));
                        alone.extend(out);
                    }
                    other => break Some(other),
                }
            };
            let Some(printed) = printed else {
                alone.extend(members);
                continue;
            };
            match printed {
                Ok(rendered) => {
                    self.inner
                        .grouped
                        .fetch_add(members.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    for (i, r) in members.into_iter().zip(rendered) {
                        results[i] = Some(r);
                    }
                }
                Err(GroupFailure::Fatal(e)) => {
                    for i in members {
                        results[i] = Some(Err(e.clone()));
                    }
                }
                Err(GroupFailure::Without(_)) => {
                    self.inner.group_fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    alone.extend(members);
                }
                Err(GroupFailure::Alone(why)) => {
                    self.inner.group_fallbacks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::info!(documents = members.len(), %why, "group printed one document at a time");
                    alone.extend(members);
                }
            }
        }
        let renders = alone.iter().map(|i| self.render_for(&specs[*i], who));
        for (i, r) in alone.iter().zip(futures::future::join_all(renders).await) {
            results[*i] = Some(r);
        }
        results.into_iter().map(|r| r.unwrap_or(Err(RenderError::ShuttingDown))).collect()
    }

    /// Prints `docs` on one page and splits the PDF; then each document's own checks and
    /// post-processing, which fail that document alone.
    async fn print_group(
        &self,
        docs: &[&RenderSpec],
        who: &Requester,
    ) -> Result<Vec<Result<Rendered, RenderError>>, GroupFailure> {
        if self.inner.closing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(GroupFailure::Fatal(RenderError::ShuttingDown));
        }
        let slot = self.inner.schedule.acquire(who).await?;
        let started = Instant::now();
        let timeout = self.inner.cfg.render_timeout;
        let marker = format!("{MARKER_ORIGIN}{}/", nonce());
        let problems = std::sync::Arc::new(Problems::default());
        let printed = tokio::time::timeout(timeout, self.group_in(docs, &marker, slot, &problems))
            .await
            .unwrap_or(Err(GroupFailure::Alone(format!("the group took longer than {timeout:?}"))));
        self.report_problems(&problems.all(), who, docs.len());
        let printed = printed?;
        let count = docs.len();
        let printed_after = started.elapsed();
        let pdfs = tokio::task::spawn_blocking(move || split::split(&printed, &marker, count))
            .await
            .map_err(|e| GroupFailure::Alone(e.to_string()))?
            .map_err(|e| GroupFailure::Alone(e.to_string()))?;
        // Each document's share of the group's print and split, as steps of its render.
        let share = |d: std::time::Duration| d / u32::try_from(count).unwrap_or(u32::MAX);
        let group_steps = [
            postprocess::Step { name: "group print", took: share(printed_after) },
            postprocess::Step { name: "split", took: share(started.elapsed() - printed_after) },
        ];
        let limits = self.inner.cfg.limits;
        let post = self.inner.cfg.postprocess();
        let finish = docs.iter().zip(pdfs).map(|(spec, split::Part { pdf, pages })| {
            let (post, group_steps) = (&post, &group_steps);
            async move {
                if pages > limits.pages as usize {
                    return Err(LimitExceeded::Pages(limits.pages).into());
                }
                let options = with_default_title(&spec.pdf_options, &spec.content);
                let parsed = postprocess::Pdf::Parsed(Box::new(pdf));
                let (pdf, steps) = postprocess::run(parsed, &options, post).await?;
                // Checked on the finished file: the split's parts are never written before.
                if pdf.len() as u64 > limits.pdf_bytes {
                    return Err(LimitExceeded::PdfBytes(limits.pdf_bytes).into());
                }
                let steps = group_steps.iter().copied().chain(steps).collect();
                Ok(Rendered {
                    pdf,
                    duration: started.elapsed(),
                    problems: Vec::new(),
                    isolated: false,
                    steps,
                })
            }
        });
        let results = futures::future::join_all(finish).await;
        let i = &self.inner;
        for r in &results {
            let counter = if r.is_ok() { &i.renders } else { &i.failures };
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(results)
    }

    /// The group page set and printed in a shared tab, within the group's budget.
    async fn group_in(
        &self,
        docs: &[&RenderSpec],
        marker: &str,
        slot: Slot,
        problems: &std::sync::Arc<Problems>,
    ) -> Result<Vec<u8>, GroupFailure> {
        let first = docs[0];
        let instance = self.instance().await?;
        let fonts = self.inner.fonts.load(&first.fonts).await?;
        let config = tailwind::config_json(first.config.as_ref());
        let keep = !first.no_store;
        // One sheet per distinct class set; the registrations gathered for the page.
        let mut sheet_of: HashMap<BTreeSet<String>, usize> = HashMap::new();
        let mut sheets: Vec<String> = Vec::new();
        let mut properties: BTreeMap<String, String> = BTreeMap::new();
        let mut page_docs = Vec::with_capacity(docs.len());
        for spec in docs {
            let classes = document::class_candidates(&spec.content);
            let sheet = match sheet_of.get(&classes) {
                Some(i) => *i,
                None => {
                    let css = self.css(&instance, &classes, &config, keep).await?;
                    let (rest, rules) = split_properties(&css);
                    for (name, rule) in rules {
                        if properties.get(&name).is_some_and(|known| *known != rule) {
                            return Err(GroupFailure::Alone(format!(
                                "documents register {name} differently"
                            )));
                        }
                        properties.insert(name, rule);
                    }
                    sheets.push(rest);
                    sheet_of.insert(classes, sheets.len() - 1);
                    sheets.len() - 1
                }
            };
            page_docs.push(PageDoc { html: &spec.content, sheet });
        }
        let params = self.print_params_for(&instance, first, &config, keep).await?;
        let mut head = String::new();
        if !fonts.css.is_empty() {
            head.push_str(&document::style_element(&fonts.css, None));
        }
        let mut page_css: String = properties.into_values().collect();
        page_css.push_str(HOST_CSS);
        if let Some(family) = first.fonts.first().map(|f| f.family()) {
            // Beats Tailwind's `:host` font rule inside each root, as `html` does alone.
            page_css.push_str(&format!(
                ".__tailpdf_doc{{font-family:\"{family}\", ui-sans-serif, system-ui, sans-serif}}"
            ));
        }
        head.push_str(&document::style_element(&page_css, None));
        let shell =
            format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\">{head}</head><body>");

        let n = u32::try_from(docs.len()).unwrap_or(u32::MAX);
        let mut limits = self.inner.cfg.limits;
        // The group's budget is its documents' together.
        limits.requests = limits.requests.saturating_mul(n);
        limits.render_bytes = limits.render_bytes.saturating_mul(u64::from(n));
        let lease = self.shared_target(&instance).await?;
        let scope = super::target::Scope::new(limits, fonts.files.clone(), true, problems.clone());
        let target = lease.target();
        target.begin(scope.clone());
        let may_load_fonts =
            !first.fonts.is_empty() || docs.iter().any(|d| document::may_load_fonts(&d.content));
        let work = async {
            let expression = format!(
                "{BUILD}({}, {}, {}, {}, {})",
                serde_json::Value::String(shell),
                serde_json::to_string(&sheets).unwrap_or_default(),
                serde_json::to_string(&page_docs).unwrap_or_default(),
                serde_json::Value::String(marker.to_owned()),
                isolation::INSPECT,
            );
            let built: Built = target.load(expression).await?.unwrap_or_default();
            if let Some(why) = built.inspection.why.or_else(|| scope.needs_scripts()) {
                return Err(
                    RenderError::Browser(format!("a document needs scripts ({why})")).into()
                );
            }
            if !built.misplaced.is_empty() {
                return Err(GroupFailure::Without(built.misplaced));
            }
            if may_load_fonts {
                super::cdp::evaluate_as::<serde_json::Value>(
                    &target.page,
                    String::from("document.fonts.ready.then(() => 1)"),
                )
                .await?;
            }
            let pages = limits.pages.saturating_mul(n);
            let bytes = limits.pdf_bytes.saturating_mul(u64::from(n));
            Ok(super::pdf::print(target, &instance.prints, params, pages, bytes).await?)
        };
        let result = tokio::select! {
            result = work => result,
            limit = scope.budget.crossed() => Err(RenderError::from(limit).into()),
        };
        let result = match scope.budget.exceeded() {
            Some(limit) => Err(RenderError::from(limit).into()),
            None => result,
        };
        match result {
            Ok(pdf) => {
                self.release_shared(lease, slot);
                Ok(pdf)
            }
            // The tab may hold anything: never reused (dropping the lease discards it).
            Err(e) => Err(e),
        }
    }
}

/// `options` with the document's `<title>` as the default title: alone it becomes the page's
/// title, which the metadata step reads from Chromium's PDF; in a group it is not the page's.
fn with_default_title(options: &PdfOptions, content: &str) -> PdfOptions {
    let given = options.metadata.as_ref().and_then(|m| m.title.as_ref());
    match (given, document::title(content)) {
        (None, Some(title)) => {
            let mut metadata: Metadata = options.metadata.clone().unwrap_or_default();
            metadata.title = Some(title);
            PdfOptions { metadata: Some(metadata), ..options.clone() }
        }
        _ => options.clone(),
    }
}

/// 16 random hex digits: the markers of one group print.
fn nonce() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap_or_default();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(content: &str) -> RenderSpec {
        serde_json::from_value(serde_json::json!({ "content": content })).unwrap()
    }

    #[test]
    fn documents_a_shadow_root_would_change_go_alone() {
        for content in [
            "<script>x()</script>",
            "<!DOCTYPE html><html><body>x</body></html>",
            "<style>:host { overflow: visible !important }</style>",
            "<style>@font-face { font-family: x; src: url(x.woff2) }</style>",
            "<style>@import url(x.css);</style>",
            "<style>@page { size: A5 }</style>",
            "<link rel=stylesheet href=x.css>",
            "<style>body { background: red }</style>",
            "<style>p, HTML { color: red }</style>",
            "<style>:root { --x: 1 }</style>",
            "<div class=\"print:fixed top-0\">x</div>",
            "<div style=\"position : fixed\">x</div>",
            "<div class=\"[position:fixed]\">x</div>",
            "<style>* { font-size: 30px }</style>",
            "<style>p:first-child { margin: 0 }</style>",
            "<div class=\"[body_&]:p-4\">x</div>",
            "<div class=\"in-[html]:p-4\">x</div>",
            "<a href=\"#terms\">terms</a>",
            "<A class=x HREF = '#top'>top</A>",
            "<area shape=rect href=#map>",
        ] {
            assert!(alone_reason(&spec(content)).is_some(), "{content}");
        }
        for content in [
            "<div class=\"p-4\">body of the letter</div>",
            "<style>.tbody { color: red } /* body * */ p.htmlish { x: y }</style><p>html</p>",
            "<div class=\"[&>p]:mt-2 w-[calc(100%-2rem)]\">x</div>",
            "<p>Dear customer,</p>",
            "<div class=\"relative\"><span class=\"absolute top-0\">fixed price</span></div>",
            "<a href=\"https://example.com/#x\">x</a><abbr title=\"#1\">#1</abbr>",
            "<svg><use href=\"#icon\"></use></svg>",
        ] {
            assert_eq!(alone_reason(&spec(content)), None, "{content}");
        }
    }

    /// Found by review: a group's print numbers its pages and applies page ranges across the
    /// whole group, not per document.
    #[test]
    fn options_the_group_would_apply_group_wide_go_alone() {
        let with = |options: serde_json::Value| RenderSpec {
            pdf_options: serde_json::from_value(options).unwrap(),
            ..spec("<p>x</p>")
        };
        // "Page 4 of 6" for the second of two 3-page documents.
        assert!(alone_reason(&with(serde_json::json!({"displayHeaderFooter": true}))).is_some());
        assert!(alone_reason(&with(serde_json::json!({"displayHeaderFooter": false}))).is_none());
        // Pages 1-4 of the group, not of each document.
        assert!(alone_reason(&with(serde_json::json!({"pageRanges": "1-4"}))).is_some());
        assert!(alone_reason(&with(serde_json::json!({"pageRanges": ""}))).is_none());
    }

    #[test]
    fn documents_group_by_everything_but_content_and_metadata() {
        let a = spec("<p>a</p>");
        let mut b = spec("<p>b</p>");
        b.pdf_options.metadata = Some(Metadata { title: Some("B".into()), ..Metadata::default() });
        assert_eq!(group_key(&a), group_key(&b));
        let mut c = spec("<p>c</p>");
        c.pdf_options.landscape = Some(true);
        assert_ne!(group_key(&a), group_key(&c));
        let mut d = spec("<p>d</p>");
        d.no_store = true;
        assert_ne!(group_key(&a), group_key(&d));
    }

    #[test]
    fn property_registrations_come_out_of_the_css() {
        let css = "@layer x{.a{b:c}}@property --tw-x { syntax: \"*\"; inherits: false; initial-value: solid; }.d{e:f}@property --tw-y{syntax:\"*\";inherits:false}";
        let (rest, rules) = split_properties(css);
        assert_eq!(rest, "@layer x{.a{b:c}}.d{e:f}");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].0, "--tw-x");
        assert!(rules[1].1.starts_with("@property --tw-y{"));
    }

    #[test]
    fn the_title_of_a_fragment_becomes_the_default_title() {
        let o = with_default_title(
            &PdfOptions::default(),
            "<title> Invoice &amp; co\n 42 </title><p>x</p>",
        );
        assert_eq!(o.metadata.unwrap().title.as_deref(), Some("Invoice & co 42"));
        let given = PdfOptions {
            metadata: Some(Metadata { title: Some("Given".into()), ..Metadata::default() }),
            ..PdfOptions::default()
        };
        let o = with_default_title(&given, "<title>Other</title>");
        assert_eq!(o.metadata.unwrap().title.as_deref(), Some("Given"));
        assert!(with_default_title(&PdfOptions::default(), "<p>x</p>").metadata.is_none());
    }
}
