//! The render pipeline: a [`RenderSpec`] in, PDF bytes out.
//!
//! One Chromium ([`browser::Instance`]) with a pool of tabs ([`tab::Tab`]). Each render, under
//! one hard deadline: fonts from the font cache, Tailwind CSS for the classes used, the document
//! into a tab, classes added by scripts caught from the DOM, `document.fonts.ready`, then
//! printToPDF. A tab that overruns is closed and replaced; a tab that finished is reset to a
//! blank page (off the latency path) so nothing of one document reaches the next. Chromium is
//! restarted after `--restart-after` renders and whenever it dies; only the render in flight
//! fails then, with a retryable error.

mod browser;
mod sandbox;
mod tab;

pub use browser::BareBrowser;

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use chromiumoxide::cdp::browser_protocol::{
    io::{CloseParams as IoCloseParams, ReadParams},
    page::PrintToPdfTransferMode,
};
use serde_json::Value;
use tailpdf_shared::RenderSpec;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use self::{
    browser::Instance,
    tab::{Resources, Tab},
};
use crate::{
    config::EngineConfig, document, error::RenderError, fonts::FontLibrary, net::GuardedFetcher,
    pdf, tailwind,
};

/// A finished render.
#[derive(Debug)]
pub struct Rendered {
    pub pdf: Vec<u8>,
    pub duration: Duration,
    /// Requests of the page that were refused or failed (URLs without their query).
    pub problems: Vec<String>,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub renders: u64,
    pub failures: u64,
    pub browser_starts: u64,
    pub tabs_replaced: u64,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: EngineConfig,
    /// Decided once at start (`--sandbox`), kept for every restart.
    sandbox: bool,
    resources: Arc<Resources>,
    memo: tailwind::CssMemo,
    slots: Arc<Semaphore>,
    tabs: usize,
    pool: Mutex<Pool>,
    closing: AtomicBool,
    renders: AtomicU64,
    failures: AtomicU64,
    browser_starts: AtomicU64,
    tabs_replaced: AtomicU64,
}

#[derive(Default)]
struct Pool {
    instance: Option<Arc<Instance>>,
    idle: Vec<Tab>,
    renders_on_instance: u64,
}

/// Reads every class of the loaded document (including ones scripts added) after its fonts.
const DOM_CLASSES: &str = "(async () => { void document.body?.offsetHeight; await document.fonts.ready; \
    const s = new Set(); for (const e of document.querySelectorAll('[class]')) for (const c of e.classList) s.add(c); \
    return [...s]; })()";

const TAILWIND_STYLE_ID: &str = "__tailpdf_tailwind";

impl Engine {
    /// Starts Chromium and loads the Tailwind compiler.
    pub async fn start(cfg: EngineConfig) -> Result<Self, RenderError> {
        browser::become_subreaper();
        let fonts = Arc::new(FontLibrary::new(
            cfg.fonts_api_base.clone(),
            cfg.font_cache_dir.clone(),
            cfg.font_timeout,
        ));
        let fetcher =
            GuardedFetcher::new(cfg.url_policy(), cfg.fetch_timeout, cfg.max_resource_bytes);
        let tabs = cfg.tabs();
        let sandbox = sandbox::resolve(cfg.sandbox).await;
        let engine = Self {
            inner: Arc::new(Inner {
                resources: Arc::new(Resources { fonts, fetcher }),
                memo: tailwind::CssMemo::default(),
                slots: Arc::new(Semaphore::new(tabs)),
                tabs,
                pool: Mutex::default(),
                closing: AtomicBool::new(false),
                renders: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                browser_starts: AtomicU64::new(0),
                tabs_replaced: AtomicU64::new(0),
                sandbox,
                cfg,
            }),
        };
        engine.instance().await?;
        Ok(engine)
    }

    pub fn tabs(&self) -> usize {
        self.inner.tabs
    }

    /// Renders that may start now without waiting for a tab.
    pub fn free_tabs(&self) -> usize {
        self.inner.slots.available_permits()
    }

    pub fn stats(&self) -> EngineStats {
        let i = &self.inner;
        EngineStats {
            renders: i.renders.load(Ordering::Relaxed),
            failures: i.failures.load(Ordering::Relaxed),
            browser_starts: i.browser_starts.load(Ordering::Relaxed),
            tabs_replaced: i.tabs_replaced.load(Ordering::Relaxed),
        }
    }

    /// Whether Chromium answers (for readiness checks).
    pub async fn is_ready(&self) -> bool {
        let pool = self.inner.pool.lock().await;
        pool.instance.as_ref().is_some_and(|i| i.is_alive())
    }

    /// The PID of the current Chromium (tests kill it to check recovery).
    pub async fn browser_pid(&self) -> Option<u32> {
        self.inner.pool.lock().await.instance.as_ref().and_then(|i| i.pid())
    }

    /// Renders `spec` to PDF within the render deadline, waiting for a free tab first.
    pub async fn render(&self, spec: &RenderSpec) -> Result<Rendered, RenderError> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(RenderError::ShuttingDown);
        }
        let slot = self
            .inner
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RenderError::ShuttingDown)?;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.inner.cfg.render_timeout;
        let result = tokio::time::timeout_at(deadline, self.render_in_tab(spec, deadline, slot))
            .await
            .unwrap_or(Err(RenderError::Timeout(self.inner.cfg.render_timeout)));
        let counter = if result.is_ok() { &self.inner.renders } else { &self.inner.failures };
        counter.fetch_add(1, Ordering::Relaxed);
        result.map(|(pdf, problems)| Rendered { pdf, duration: started.elapsed(), problems })
    }

    /// CSS for a class set and config, as the engine would generate it (benchmarks, tests).
    pub async fn tailwind_css(
        &self,
        classes: &BTreeSet<String>,
        config: Option<&serde_json::Map<String, Value>>,
    ) -> Result<Arc<str>, RenderError> {
        let instance = self.instance().await?;
        let timeout = self.inner.cfg.render_timeout;
        tailwind::css(
            &instance.compiler,
            &self.inner.memo,
            classes,
            &tailwind::config_json(config),
            timeout,
        )
        .await
    }

    /// Forgets memoized CSS (benchmarks measure the uncached path with it).
    pub fn clear_css_memo(&self) {
        self.inner.memo.clear();
    }

    /// Stops taking renders, waits up to `grace` for those in flight, closes Chromium.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.closing.store(true, Ordering::SeqCst);
        let all = u32::try_from(self.inner.tabs).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(grace, self.inner.slots.acquire_many(all)).await;
        self.inner.slots.close();
        drop(drained);
        let mut pool = self.inner.pool.lock().await;
        pool.idle.clear();
        if let Some(instance) = pool.instance.take() {
            instance.close().await;
        }
    }

    /// The live Chromium, started (again) when there is none, it died, or it is due a restart.
    async fn instance(&self) -> Result<Arc<Instance>, RenderError> {
        let mut pool = self.inner.pool.lock().await;
        let restart_after = self.inner.cfg.restart_after;
        let due = restart_after > 0 && pool.renders_on_instance >= restart_after;
        if let Some(instance) = &pool.instance {
            if instance.is_alive() && !due {
                return Ok(instance.clone());
            }
        }
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(RenderError::ShuttingDown);
        }
        pool.idle.clear();
        if let Some(old) = pool.instance.take() {
            tracing::info!(
                renders = pool.renders_on_instance,
                alive = old.is_alive(),
                "replacing chromium"
            );
            retire(old);
        }
        let generation = self.inner.browser_starts.fetch_add(1, Ordering::Relaxed) + 1;
        let instance = Instance::launch(&self.inner.cfg, generation, self.inner.sandbox).await?;
        pool.instance = Some(instance.clone());
        pool.renders_on_instance = 0;
        Ok(instance)
    }

    async fn checkout(&self, instance: &Arc<Instance>) -> Result<Tab, RenderError> {
        {
            let mut pool = self.inner.pool.lock().await;
            pool.renders_on_instance += 1;
            while let Some(tab) = pool.idle.pop() {
                if tab.generation == instance.generation {
                    return Ok(tab);
                }
            }
        }
        let page = instance.new_page().await?;
        Tab::open(page, instance.generation, self.inner.resources.clone()).await
    }

    /// Back to the pool. A document that could run code is first replaced by a blank page,
    /// which drops its scripts, timers and globals; the tab's slot is held until then, so the
    /// next render never sees them and never waits for a new tab.
    fn checkin(&self, tab: Tab, reset: bool, slot: OwnedSemaphorePermit) {
        let engine = self.clone();
        tokio::spawn(async move {
            let clean = !reset
                || matches!(
                    tokio::time::timeout(Duration::from_secs(5), tab.page.goto("about:blank"))
                        .await,
                    Ok(Ok(_))
                );
            let mut pool = engine.inner.pool.lock().await;
            let current = pool.instance.as_ref().map(|i| i.generation);
            if clean && current == Some(tab.generation) {
                tab.take_problems();
                pool.idle.push(tab);
            } else {
                drop(pool);
                discard(tab, &engine.inner.tabs_replaced);
            }
            drop(slot);
        });
    }

    async fn render_in_tab(
        &self,
        spec: &RenderSpec,
        deadline: tokio::time::Instant,
        slot: OwnedSemaphorePermit,
    ) -> Result<(Vec<u8>, Vec<String>), RenderError> {
        let instance = self.instance().await?;
        let fonts_css = self.inner.resources.fonts.stylesheet(&spec.fonts).await?;
        let config = tailwind::config_json(spec.config.as_ref());
        let call_timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
        let css = |classes: BTreeSet<String>| {
            let instance = instance.clone();
            let config = config.clone();
            async move {
                tailwind::css(&instance.compiler, &self.inner.memo, &classes, &config, call_timeout)
                    .await
            }
        };
        let mut classes = document::class_candidates(&spec.content);
        let page_css = css(classes.clone()).await?;
        let options = &spec.pdf_options;
        let templates: String = [&options.header_template, &options.footer_template]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let template_classes = document::class_candidates(&templates);
        let template_css =
            if template_classes.is_empty() { None } else { Some(css(template_classes).await?) };
        let params = pdf::print_params(options, template_css.as_deref().unwrap_or(""))?;

        let head = head_html(&fonts_css, &page_css, spec.fonts.first().map(|f| f.family()));
        let html = document::build_document(&spec.content, &head);

        let active = document::is_active(&spec.content);
        let lease = Lease::new(self.checkout(&instance).await?, self);
        let tab = lease.tab();
        tab.take_problems();
        tab.page.set_content(html).await.map_err(cdp)?;
        // Scripts may add classes (the attribute scan cannot see those) and the page may load
        // fonts of its own: read the classes from the DOM once the fonts are in. A passive
        // document has nothing to add, and printToPDF lays it out anyway.
        if active || !spec.fonts.is_empty() || document::may_load_fonts(&spec.content) {
            let dom: Vec<String> = evaluate(&tab.page, DOM_CLASSES.to_owned()).await?;
            let before = classes.len();
            classes.extend(dom);
            if classes.len() > before {
                let all = css(classes).await?;
                let inject = format!(
                    "(async () => {{ document.getElementById('{TAILWIND_STYLE_ID}').textContent = {}; \
                     void document.body?.offsetHeight; await document.fonts.ready; return 1; }})()",
                    Value::String(all.to_string())
                );
                evaluate::<Value>(&tab.page, inject).await?;
            }
        }
        let pdf = print(&tab.page, params).await?;
        let problems = tab.take_problems();
        if !problems.is_empty() {
            tracing::warn!(?problems, "requests of the page were refused or failed");
        }
        lease.release(active, slot);
        Ok((pdf, problems))
    }
}

/// Our part of the document's head: the fonts' `@font-face` rules, Tailwind's CSS, and the
/// first requested font as the default (in Tailwind's base layer, so utilities still win).
fn head_html(fonts_css: &str, tailwind_css: &str, default_family: Option<&str>) -> String {
    let mut head = String::new();
    if !fonts_css.is_empty() {
        head.push_str("<style>");
        head.push_str(fonts_css);
        head.push_str("</style>");
    }
    head.push_str(&format!("<style id=\"{TAILWIND_STYLE_ID}\">{tailwind_css}</style>"));
    if let Some(family) = default_family {
        head.push_str(&format!(
            "<style>@layer base {{ html {{ font-family: \"{family}\", ui-sans-serif, system-ui, sans-serif; }} }}</style>"
        ));
    }
    head
}

/// A checked-out tab: released back to the pool on success, closed and replaced if the render
/// is abandoned (deadline, error), so a broken or busy tab is never reused.
struct Lease<'a> {
    tab: Option<Tab>,
    engine: &'a Engine,
}

impl<'a> Lease<'a> {
    fn new(tab: Tab, engine: &'a Engine) -> Self {
        Self { tab: Some(tab), engine }
    }

    fn tab(&self) -> &Tab {
        self.tab.as_ref().unwrap_or_else(|| unreachable!("a lease holds its tab until released"))
    }

    fn release(mut self, reset: bool, slot: OwnedSemaphorePermit) {
        if let Some(tab) = self.tab.take() {
            self.engine.checkin(tab, reset, slot);
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(tab) = self.tab.take() {
            discard(tab, &self.engine.inner.tabs_replaced);
        }
    }
}

fn discard(tab: Tab, replaced: &AtomicU64) {
    replaced.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), tab.page.clone().close()).await;
        drop(tab);
    });
}

/// Closes an old Chromium once the renders still using it have finished.
fn retire(old: Arc<Instance>) {
    tokio::spawn(async move {
        for _ in 0..600 {
            if Arc::strong_count(&old) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        old.close().await;
    });
}

fn cdp(e: chromiumoxide::error::CdpError) -> RenderError {
    RenderError::Browser(e.to_string())
}

/// Evaluates a script of ours in the document; the render's deadline bounds it.
async fn evaluate<T: serde::de::DeserializeOwned>(
    page: &chromiumoxide::Page,
    expression: String,
) -> Result<T, RenderError> {
    let answer =
        crate::cdp::evaluate(page, expression, Duration::from_secs(3600), "the page").await?;
    if let Some(ex) = &answer.exception_details {
        return Err(RenderError::Browser(format!("page script failed: {}", ex.text)));
    }
    let value = answer.result.value.unwrap_or(Value::Null);
    serde_json::from_value(value)
        .map_err(|e| RenderError::Browser(format!("unexpected answer: {e}")))
}

/// printToPDF, read back as a stream (a large PDF does not fit one CDP message).
async fn print(
    page: &chromiumoxide::Page,
    mut params: chromiumoxide::cdp::browser_protocol::page::PrintToPdfParams,
) -> Result<Vec<u8>, RenderError> {
    params.transfer_mode = Some(PrintToPdfTransferMode::ReturnAsStream);
    let response = page.execute(params).await.map_err(|e| match e {
        chromiumoxide::error::CdpError::Chrome(ref c) if c.code == -32000 => {
            RenderError::BadInput(format!("`pdfOptions.pageRanges`: {}.", c.message))
        }
        other => cdp(other),
    })?;
    let Some(handle) = response.result.stream.clone() else {
        let data: &str = response.result.data.as_ref();
        return BASE64.decode(data).map_err(|e| RenderError::Browser(format!("bad PDF data: {e}")));
    };
    let mut pdf = Vec::new();
    loop {
        let mut read = ReadParams::new(handle.clone());
        read.size = Some(8 * 1024 * 1024);
        let chunk = page.execute(read).await.map_err(cdp)?.result;
        if chunk.base64_encoded.unwrap_or(false) {
            pdf.extend(
                BASE64.decode(&chunk.data).map_err(|e| RenderError::Browser(e.to_string()))?,
            );
        } else {
            pdf.extend_from_slice(chunk.data.as_bytes());
        }
        if chunk.eof {
            break;
        }
    }
    let _ = page.execute(IoCloseParams::new(handle)).await;
    Ok(pdf)
}
