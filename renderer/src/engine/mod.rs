//! The render pipeline: a [`RenderSpec`] in, PDF bytes out.
//!
//! One Chromium ([`browser::Instance`]) and, under one hard deadline per render: fonts from the
//! font cache ([`fonts`]), Tailwind CSS for the classes used ([`tailwind`]), the document
//! ([`document`]) set into a target ([`target`]) chosen by [`isolation`]: a reused tab with
//! scripts off, or a browser context of its own for a document that runs code (one its
//! account's previous such document left warm, [`warm`]). Then the
//! classes the DOM really has, `document.fonts.ready`, and printToPDF within the page and byte
//! limits ([`pdf`]). Every request of the page goes through the interceptor, within the
//! render's budget ([`budget`]). Then, with the tab free again, the post-processing stage
//! ([`crate::postprocess`]) under its own deadline.
//!
//! Tabs and contexts come and go in [`pool`]: a target that overruns is closed and replaced;
//! Chromium is restarted after `--restart-after` renders, whenever it dies, and when it stops
//! answering (a health check, a tab that cannot be closed, a compiler page that does not
//! answer); only the render in flight fails then, with a retryable error.

mod browser;
mod budget;
mod cdp;
mod content;
pub mod document;
mod fonts;
mod glyphs;
pub mod group;
pub mod isolation;
mod lru;
pub mod pdf;
mod pool;
mod prints;
pub mod problems;
mod rest;
mod sandbox;
pub mod schedule;
pub mod split;
pub mod tailwind;
mod target;
mod warm;

#[cfg(feature = "testing")]
pub use browser::BareBrowser;
pub use fonts::{FontFile, FontLibrary, FontSet};

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chromiumoxide::cdp::browser_protocol::page::PrintToPdfParams;
use serde_json::Value;
use tailpdf_shared::RenderSpec;

use self::{
    browser::Instance,
    cdp::evaluate_as,
    isolation::Inspection,
    pool::{Lease, Pool},
    problems::{Problem, Problems, Refusal},
    sandbox::Plan,
    schedule::{Load, Requester, Scheduler, Slot},
    target::{Scope, Target},
};
use crate::{
    config::EngineConfig,
    error::{LimitExceeded, RenderError},
    net::GuardedFetcher,
    postprocess,
};

/// A finished render.
#[derive(Debug)]
pub struct Rendered {
    pub pdf: Vec<u8>,
    pub duration: Duration,
    /// Requests of the page that were refused or failed (URLs without their query).
    pub problems: Vec<Problem>,
    /// Whether the document had a browser context of its own (it runs scripts).
    pub isolated: bool,
    /// The post-processing steps that ran, with their times (within `duration`).
    pub steps: Vec<crate::postprocess::Step>,
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub renders: u64,
    pub failures: u64,
    pub browser_starts: u64,
    pub tabs_replaced: u64,
    /// Renders in a browser context of their own.
    pub isolated_renders: u64,
    /// Of those, renders in a context their account's previous such render left warm.
    pub warm_reuses: u64,
    /// Times Chromium collected its garbage at rest (`--rest-after`).
    pub rest_collections: u64,
    /// Documents sent from a shared tab to a fresh context once their DOM showed they need
    /// scripts (a miss of the lexical look: speed lost, never isolation).
    pub escalations: u64,
    /// Renders that crossed one of their limits.
    pub limit_failures: u64,
    /// Renders whose post-processing (metadata, PDF/A, encryption) failed.
    pub postprocess_failures: u64,
    /// Documents printed in a group page with others of their batch ([`group`]).
    pub grouped: u64,
    /// Groups that could not be printed as one, whose documents were rendered alone.
    pub group_fallbacks: u64,
    /// Requests of documents not loaded, by reason (in the order of [`Refusal::ALL`]).
    pub refused: [u64; Refusal::ALL.len()],
    /// Print compositors stopped after their print was abandoned (its deadline passed).
    pub compositors_stopped: u64,
    /// Page processes stopped after their render was abandoned (where the headless shell
    /// prints, and where a script may loop).
    pub pages_stopped: u64,
}

#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: EngineConfig,
    /// Decided once at start (`--sandbox`, `--chromium-user`), kept for every restart.
    plan: Plan,
    fetcher: GuardedFetcher,
    fonts: FontLibrary,
    memo: tailwind::CssMemo,
    schedule: Scheduler,
    tabs: usize,
    pool: Pool,
    closing: AtomicBool,
    renders: AtomicU64,
    failures: AtomicU64,
    browser_starts: AtomicU64,
    tabs_replaced: AtomicU64,
    isolated_renders: AtomicU64,
    warm_reuses: AtomicU64,
    rest_collections: AtomicU64,
    escalations: AtomicU64,
    limit_failures: AtomicU64,
    postprocess_failures: AtomicU64,
    grouped: AtomicU64,
    group_fallbacks: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    compositors_stopped: Arc<AtomicU64>,
    pages_stopped: AtomicU64,
}

/// Our part of a document: built once per render, whichever target renders it.
struct Prepared {
    html: String,
    params: PrintToPdfParams,
    classes: BTreeSet<String>,
    config: String,
    /// Whether its CSS may be memoized (not under `X-No-Store`).
    keep_css: bool,
    /// Whether the document can have fonts to wait for (its own, or the request's).
    fonts: bool,
}

/// How a render on a shared tab ended.
enum Shared {
    Done(Vec<u8>),
    /// The document needs scripts after all: render it again in a fresh context.
    NeedsScripts(String),
}

const TAILWIND_STYLE_ID: &str = "__tailpdf_tailwind";
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long [`Engine::warm`] may take before the service is ready without it.
const WARM_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`Engine::warm`] has ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmState {
    /// Shared tabs open and free.
    pub shared_tabs: usize,
    /// Browser contexts made ahead for documents that run scripts.
    pub spare_contexts: usize,
    /// Compiler workers idle that have generated CSS once.
    pub compilers: usize,
}

impl Engine {
    /// Starts Chromium and loads the Tailwind compiler. Fails, and the service with it, if a
    /// guard cannot be built.
    pub async fn start(cfg: EngineConfig) -> Result<Self, RenderError> {
        browser::become_subreaper();
        let fonts = FontLibrary::new(
            cfg.fonts_api_base.clone(),
            cfg.font_cache_dir.clone(),
            cfg.font_timeout,
            cfg.font_cache_max_bytes,
        )?;
        let fetcher =
            GuardedFetcher::new(cfg.url_policy(), cfg.fetch_timeout, cfg.limits.resource_bytes)
                .map_err(|e| RenderError::Browser(e.to_string()))?;
        let tabs = cfg.tabs();
        let plan = sandbox::resolve(cfg.sandbox, &cfg.chromium_user).await?;
        let engine = Self {
            inner: Arc::new(Inner {
                plan,
                fetcher,
                fonts,
                memo: tailwind::CssMemo::default(),
                schedule: Scheduler::new(schedule::Shares::of(&cfg)),
                tabs,
                pool: Pool::default(),
                closing: AtomicBool::new(false),
                renders: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                browser_starts: AtomicU64::new(0),
                tabs_replaced: AtomicU64::new(0),
                isolated_renders: AtomicU64::new(0),
                warm_reuses: AtomicU64::new(0),
                rest_collections: AtomicU64::new(0),
                escalations: AtomicU64::new(0),
                limit_failures: AtomicU64::new(0),
                postprocess_failures: AtomicU64::new(0),
                grouped: AtomicU64::new(0),
                group_fallbacks: AtomicU64::new(0),
                refused: Default::default(),
                compositors_stopped: Arc::default(),
                pages_stopped: AtomicU64::new(0),
                cfg,
            }),
        };
        let instance = engine.instance().await?;
        engine.refill_spares(&instance);
        rest::tend(Arc::downgrade(&engine.inner), engine.inner.cfg.rest_after);
        Ok(engine)
    }

    pub fn tabs(&self) -> usize {
        self.inner.tabs
    }

    /// Renders running and waiting for a slot, and the accounts they are for.
    pub fn load(&self) -> Load {
        self.inner.schedule.load()
    }

    pub fn stats(&self) -> EngineStats {
        let i = &self.inner;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            renders: get(&i.renders),
            failures: get(&i.failures),
            browser_starts: get(&i.browser_starts),
            tabs_replaced: get(&i.tabs_replaced),
            isolated_renders: get(&i.isolated_renders),
            warm_reuses: get(&i.warm_reuses),
            rest_collections: get(&i.rest_collections),
            escalations: get(&i.escalations),
            limit_failures: get(&i.limit_failures),
            postprocess_failures: get(&i.postprocess_failures),
            grouped: get(&i.grouped),
            group_fallbacks: get(&i.group_fallbacks),
            refused: std::array::from_fn(|r| get(&i.refused[r])),
            compositors_stopped: get(&i.compositors_stopped),
            pages_stopped: get(&i.pages_stopped),
        }
    }

    /// Whether a render could start now: Chromium and its compiler page answer within 2 s. One
    /// that does not is replaced (in the background); until then the engine is not ready.
    pub async fn is_ready(&self) -> bool {
        if self.inner.closing.load(Ordering::SeqCst) {
            return false;
        }
        let healthy = match self.current_instance().await {
            Some(instance) if instance.is_alive() => {
                let answers = instance.ping(HEALTH_TIMEOUT).await;
                if !answers {
                    instance.mark_unhealthy("no answer to a health check within 2s");
                }
                answers
            }
            _ => false,
        };
        if !healthy {
            let engine = self.clone();
            tokio::spawn(async move {
                if let Ok(instance) = engine.instance().await {
                    engine.refill_spares(&instance);
                }
            });
        }
        healthy
    }

    /// Makes the first renders as quick as later ones, before the service says it is ready:
    /// every compiler worker loaded and run once while a shared tab per slot (the guest tab of
    /// an account with nothing running included) opens, then each tab used once (a small
    /// document set and printed: a new tab's first print costs more), and a spare browser
    /// context per tab made. What fails here is logged, not fatal: renders open what they
    /// need themselves.
    pub async fn warm(&self) {
        let started = Instant::now();
        let spec = RenderSpec {
            content: String::from("<p class=\"p-4 text-sm\">tailpdf</p>"),
            fonts: Vec::new(),
            config: None,
            pdf_options: tailpdf_shared::pdf_options::PdfOptions::default(),
            // Its CSS is not memoized: the warm-up leaves nothing behind but open tabs.
            no_store: true,
        };
        // Guest tabs too: the first render that needs one must not wait for a tab to open.
        let shares = self.inner.schedule.shares();
        let tabs = shares.ahead();
        let work = async {
            let instance = self.instance().await?;
            let compilers = async {
                let timeout = self.inner.cfg.compiler_timeout;
                let workers = shares.at_most();
                match tailwind::warm_up(&instance.compiler, timeout).await {
                    Ok(n) if n == workers => {}
                    Ok(n) => tracing::warn!(warm = n, workers, "compiler workers not warm"),
                    Err(e) => tracing::warn!(error = %e, "the compiler did not warm up"),
                }
            };
            // Each tab opened with a slot of its own, at once, then put back in the pool. Each
            // slot is another (internal) account's, so that none waits for another's.
            let warming = |i: usize| Requester::new(&format!("warm-up {i}"), schedule::Lane::Sync);
            let instance = &instance;
            let open = (0..tabs).map(|i| async move {
                let slot = self.inner.schedule.acquire(&warming(i)).await?;
                let lease = self.shared_target(instance).await?;
                self.release_shared(lease, slot);
                Ok::<_, RenderError>(())
            });
            let (opened, ()) =
                futures::future::join(futures::future::join_all(open), compilers).await;
            for result in opened {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "no tab opened ahead");
                }
            }
            // Tabs opened ahead are no renders (`--restart-after`).
            self.forget_renders().await;
            // Then a first print in each: at once, so that each takes a tab of its own.
            let spec = &spec;
            let renders = (0..tabs).map(|i| async move {
                let slot = self.inner.schedule.acquire(&warming(i)).await?;
                self.render_in(spec, slot, &Arc::default()).await
            });
            for result in futures::future::join_all(renders).await {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "a warm-up render failed");
                }
            }
            // Each tab is back in the pool when its slot is.
            self.inner.schedule.idle().await;
            self.spares_made().await;
            Ok::<_, RenderError>(())
        };
        match tokio::time::timeout(WARM_TIMEOUT, work).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "no warm-up"),
            Err(_) => {
                tracing::warn!(timeout = ?WARM_TIMEOUT, "warming up took too long; ready without it");
            }
        }
        self.forget_renders().await;
        let (shared_tabs, spare_contexts) = self.ready_targets().await;
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            shared_tabs,
            spare_contexts,
            "warmed up"
        );
    }

    /// Renders `spec` to PDF within the render deadline, waiting for a free tab first, as
    /// nobody's in particular (the CLI, tests): see [`Engine::render_for`].
    pub async fn render(&self, spec: &RenderSpec) -> Result<Rendered, RenderError> {
        self.render_for(spec, &Requester::anonymous()).await
    }

    /// Renders `spec` for `who`: a slot once the scheduler gives `who` one ([`schedule`]),
    /// then the render within its deadline, which starts with the slot (`--render-timeout`:
    /// loading, layout and printing count), then post-processing under its own.
    pub async fn render_for(
        &self,
        spec: &RenderSpec,
        who: &Requester,
    ) -> Result<Rendered, RenderError> {
        if self.inner.closing.load(Ordering::SeqCst) {
            return Err(RenderError::ShuttingDown);
        }
        let slot = self.inner.schedule.acquire(who).await?;
        let started = Instant::now();
        let problems = Arc::new(Problems::default());
        let deadline = tokio::time::Instant::now() + self.inner.cfg.render_timeout;
        let printed = tokio::time::timeout_at(deadline, self.render_in(spec, slot, &problems))
            .await
            .unwrap_or(Err(RenderError::Timeout(self.inner.cfg.render_timeout)));
        // The tab is free again: post-processing has a deadline of its own.
        let result = match printed {
            Ok((pdf, isolated)) => {
                postprocess::run(pdf, &spec.pdf_options, &self.inner.cfg.postprocess())
                    .await
                    .map(|(pdf, steps)| (pdf, isolated, steps))
            }
            Err(e) => Err(e),
        };
        let problems = problems.all();
        self.report_problems(&problems, who, 1);
        let i = &self.inner;
        match &result {
            Ok(_) => i.renders.fetch_add(1, Ordering::Relaxed),
            Err(e) => {
                match e {
                    RenderError::Limit(_) => i.limit_failures.fetch_add(1, Ordering::Relaxed),
                    RenderError::PostProcess(_) => {
                        i.postprocess_failures.fetch_add(1, Ordering::Relaxed)
                    }
                    _ => 0,
                };
                i.failures.fetch_add(1, Ordering::Relaxed)
            }
        };
        result.map(|(pdf, isolated, steps)| Rendered {
            pdf,
            duration: started.elapsed(),
            problems,
            isolated,
            steps,
        })
    }

    /// The requests of one render (or group print, of `documents`) that were not loaded: one
    /// log line, and the counters by reason.
    fn report_problems(&self, problems: &[Problem], who: &Requester, documents: usize) {
        for p in problems {
            let at = Refusal::ALL.iter().position(|r| *r == p.reason).unwrap_or_default();
            self.inner.refused[at].fetch_add(1, Ordering::Relaxed);
        }
        if let Some((reasons, first)) = problems::summary(problems) {
            tracing::warn!(
                account = %who.account,
                documents,
                not_loaded = problems.len(),
                %reasons,
                %first,
                "requests of the document were refused or failed"
            );
        }
    }

    /// Stops taking renders, waits up to `grace` for those in flight, closes Chromium.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.inner.schedule.close();
        let _ = tokio::time::timeout(grace, self.inner.schedule.idle()).await;
        if let Some(instance) = self.take_instance().await {
            instance.close().await;
        }
    }

    /// The render itself, in the slot it was given; the requests not loaded go to
    /// `problems`. Answers the PDF and whether it had a context of its own.
    async fn render_in(
        &self,
        spec: &RenderSpec,
        slot: Slot,
        problems: &Arc<Problems>,
    ) -> Result<(Vec<u8>, bool), RenderError> {
        let instance = self.instance().await?;
        let fonts = self.inner.fonts.load(&spec.fonts).await?;
        let prepared = self.prepare(&instance, spec, &fonts).await?;
        if !isolation::needs_scripts(&spec.content) {
            let lease = self.shared_target(&instance).await?;
            let scope =
                Scope::new(self.inner.cfg.limits, fonts.files.clone(), true, problems.clone());
            match self.render_shared(&instance, &lease, &prepared, &scope).await? {
                Shared::Done(pdf) => {
                    self.release_shared(lease, slot);
                    return Ok((pdf, false));
                }
                Shared::NeedsScripts(why) => {
                    // The tab may hold a half-loaded document that wanted more: never reused.
                    drop(lease);
                    self.inner.escalations.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%why, "the document needs scripts: rendering it in a fresh context");
                }
            }
        }
        let account = slot.account().clone();
        let lease = self.account_target(&instance, &account).await?;
        let scope = Scope::new(self.inner.cfg.limits, fonts.files, false, problems.clone());
        let pdf =
            within_budget(&scope, self.render_fresh(&instance, &lease, &prepared, &scope)).await;
        self.release_fresh(lease, slot, account, pdf.is_ok(), scope.opened_origin());
        self.inner.isolated_renders.fetch_add(1, Ordering::Relaxed);
        Ok((pdf?, true))
    }

    /// The document, our styles in its head, and the print parameters.
    async fn prepare(
        &self,
        instance: &Instance,
        spec: &RenderSpec,
        fonts: &FontSet,
    ) -> Result<Prepared, RenderError> {
        let config = tailwind::config_json(spec.config.as_ref());
        let classes = document::class_candidates(&spec.content);
        let keep_css = !spec.no_store;
        let page_css = self.css(instance, &classes, &config, keep_css).await?;
        let params = self.print_params_for(instance, spec, &config, keep_css).await?;
        let head = head_html(&fonts.css, &page_css, spec.fonts.first().map(|f| f.family()));
        Ok(Prepared {
            html: document::build_document(&spec.content, &head),
            params,
            classes,
            config,
            keep_css,
            fonts: !spec.fonts.is_empty() || document::may_load_fonts(&spec.content),
        })
    }

    /// The print parameters of `spec`, its header and footer templates with their Tailwind CSS.
    async fn print_params_for(
        &self,
        instance: &Instance,
        spec: &RenderSpec,
        config: &str,
        keep_css: bool,
    ) -> Result<PrintToPdfParams, RenderError> {
        let options = &spec.pdf_options;
        let templates: String = [&options.header_template, &options.footer_template]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
        let template_classes = document::class_candidates(&templates);
        let template_css = if template_classes.is_empty() {
            None
        } else {
            Some(self.css(instance, &template_classes, config, keep_css).await?)
        };
        pdf::print_params(options, template_css.as_deref().unwrap_or(""))
    }

    /// Tailwind CSS for `classes`, within the class and CSS limits and the compiler deadline,
    /// memoized when `keep`. A compiler page that does not answer at all gets Chromium
    /// replaced.
    async fn css(
        &self,
        instance: &Instance,
        classes: &BTreeSet<String>,
        config: &str,
        keep: bool,
    ) -> Result<Arc<str>, RenderError> {
        let limit = self.inner.cfg.limits.classes;
        if classes.len() > limit {
            return Err(LimitExceeded::Classes { used: classes.len(), limit }.into());
        }
        let compiler = tailwind::Compiler {
            page: &instance.compiler,
            timeout: self.inner.cfg.compiler_timeout,
            max_css_bytes: self.inner.cfg.limits.css_bytes,
        };
        let css = compiler.css(&self.inner.memo, classes, config, keep).await;
        if let Err(RenderError::Browser(why)) = &css {
            instance.mark_unhealthy(why);
        }
        css
    }

    /// A document judged passive, in a shared tab where no script runs. Its DOM decides: if it
    /// turns out to want scripts, nothing of it ran, and it goes to a fresh context.
    async fn render_shared(
        &self,
        instance: &Instance,
        lease: &Lease<'_>,
        prepared: &Prepared,
        scope: &Arc<Scope>,
    ) -> Result<Shared, RenderError> {
        let target = lease.target();
        target.begin(scope.clone());
        let work = async {
            // Parsed with scripts off, so the DOM is the markup's: inspect it in the same call.
            let inspect = isolation::inspect_expression(false);
            let seen: Inspection =
                target.set_document(&prepared.html, Some(&inspect)).await?.unwrap_or_default();
            if let Some(why) = seen.why.or_else(|| scope.needs_scripts()) {
                return Ok(Shared::NeedsScripts(why));
            }
            if prepared.fonts {
                evaluate_as::<Value>(
                    &target.page,
                    String::from("document.fonts.ready.then(() => 1)"),
                )
                .await?;
            }
            let pdf = self.finish(instance, target, prepared, seen.classes).await?;
            Ok(Shared::Done(pdf))
        };
        within_budget(scope, work).await
    }

    /// A document that runs scripts, in a browser context of its own.
    async fn render_fresh(
        &self,
        instance: &Instance,
        lease: &Lease<'_>,
        prepared: &Prepared,
        scope: &Arc<Scope>,
    ) -> Result<Vec<u8>, RenderError> {
        let target = lease.target();
        target.begin(scope.clone());
        target.set_document::<Value>(&prepared.html, None).await?;
        // Scripts may add classes (the attribute scan cannot see those) and fonts.
        let seen: Inspection =
            evaluate_as(&target.page, isolation::inspect_expression(true)).await?;
        self.finish(instance, target, prepared, seen.classes).await
    }

    /// CSS for the classes the DOM has beyond those already styled, then the print.
    async fn finish(
        &self,
        instance: &Instance,
        target: &Target,
        prepared: &Prepared,
        dom_classes: BTreeSet<String>,
    ) -> Result<Vec<u8>, RenderError> {
        let mut classes = prepared.classes.clone();
        let before = classes.len();
        classes.extend(document::candidates(dom_classes));
        if classes.len() > before {
            let all = self.css(instance, &classes, &prepared.config, prepared.keep_css).await?;
            // textContent: the CSS is text, whatever it holds.
            let inject = format!(
                "(async () => {{ document.getElementById('{TAILWIND_STYLE_ID}').textContent = {}; \
                 void document.body?.offsetHeight; await document.fonts.ready; return 1; }})()",
                Value::String(all.to_string())
            );
            evaluate_as::<Value>(&target.page, inject).await?;
        }
        let limits = &self.inner.cfg.limits;
        let params = prepared.params.clone();
        pdf::print(target, &instance.prints, params, limits.pages, limits.pdf_bytes).await
    }
}

/// `work`, failing as soon as the render crosses a limit of its budget (the document would be
/// incomplete), or afterwards if it crossed one meanwhile.
async fn within_budget<T>(
    scope: &Scope,
    work: impl std::future::Future<Output = Result<T, RenderError>>,
) -> Result<T, RenderError> {
    let result = tokio::select! {
        result = work => result,
        limit = scope.budget.crossed() => Err(limit.into()),
    };
    match scope.budget.exceeded() {
        Some(limit) => Err(limit.into()),
        None => result,
    }
}

/// Our part of the document's head: the fonts' `@font-face` rules, Tailwind's CSS, and the
/// first requested font as the default (in Tailwind's base layer, so utilities still win).
fn head_html(fonts_css: &str, tailwind_css: &str, default_family: Option<&str>) -> String {
    let mut head = String::new();
    if !fonts_css.is_empty() {
        head.push_str(&document::style_element(fonts_css, None));
    }
    head.push_str(&document::style_element(tailwind_css, Some(TAILWIND_STYLE_ID)));
    if let Some(family) = default_family {
        // Family names are letters, digits, spaces and hyphens (shared::fonts).
        head.push_str(&format!(
            "<style>@layer base {{ html {{ font-family: \"{family}\", ui-sans-serif, system-ui, sans-serif; }} }}</style>"
        ));
    }
    head
}

/// Hooks for tests and the benchmark (feature `testing`).
#[cfg(feature = "testing")]
impl Engine {
    /// The PID of the current Chromium (tests kill or stop it).
    pub async fn browser_pid(&self) -> Option<u32> {
        self.current_instance().await.and_then(|i| i.pid())
    }

    /// CSS for a class set and config, as the engine would generate it.
    pub async fn tailwind_css(
        &self,
        classes: &BTreeSet<String>,
        config: Option<&serde_json::Map<String, Value>>,
    ) -> Result<Arc<str>, RenderError> {
        let instance = self.instance().await?;
        self.css(&instance, classes, &tailwind::config_json(config), true).await
    }

    /// Forgets memoized CSS (benchmarks measure the uncached path with it).
    pub fn clear_css_memo(&self) {
        self.inner.memo.clear();
    }

    /// How many CSS answers are memoized.
    pub fn css_memo_entries(&self) -> usize {
        self.inner.memo.len()
    }

    /// What is warm: shared tabs, spare contexts, compiler workers.
    pub async fn warm_state(&self) -> WarmState {
        let (shared_tabs, spare_contexts) = self.ready_targets().await;
        let compilers = match self.current_instance().await {
            Some(instance) => tailwind::warm_workers(&instance.compiler).await,
            None => 0,
        };
        WarmState { shared_tabs, spare_contexts, compilers }
    }

    /// The page process the engine found for each free shared tab and spare fresh target, in
    /// that order (`None`: not known).
    pub async fn ready_page_processes(&self) -> Vec<Option<i32>> {
        self.ready_processes().await.into_iter().map(|p| p.map(|p| p.pid())).collect()
    }

    /// `document.visibilityState` of each free shared tab and of each spare fresh target.
    pub async fn tab_visibility(&self) -> (Vec<String>, Vec<String>) {
        let (shared, fresh) = self.ready_pages().await;
        let of = |pages: Vec<chromiumoxide::Page>| async move {
            let mut states = Vec::new();
            for page in pages {
                let state = evaluate_as::<String>(&page, String::from("document.visibilityState"))
                    .await
                    .unwrap_or_else(|e| format!("unknown ({e})"));
                states.push(state);
            }
            states
        };
        (of(shared).await, of(fresh).await)
    }

    /// Bytes of font files cached in memory and on disk.
    pub fn font_cache_bytes(&self) -> (u64, u64) {
        self.inner.fonts.cached_bytes()
    }
}
