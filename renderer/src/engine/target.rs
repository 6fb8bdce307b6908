//! A render target (a tab) and its request interceptor: every request a document makes is
//! paused and answered here, under the current render's [`Scope`]: font files from the render's
//! font set, anything else through the guarded fetcher within the render's budget, or refused.
//! Chromium itself never touches the network (its resolver resolves nothing), and a request
//! that arrives when no render is under way is refused.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use chromiumoxide::{
    cdp::browser_protocol::{
        browser::BrowserContextId,
        emulation::SetScriptExecutionDisabledParams,
        fetch::{
            ContinueRequestParams, EnableParams, EventRequestPaused, FailRequestParams,
            FulfillRequestParams, HeaderEntry, RequestPattern, RequestStage,
        },
        inspector::EventTargetCrashed,
        log::{EnableParams as LogEnableParams, EventEntryAdded},
        network::{ErrorReason, ResourceType, SetCacheDisabledParams},
        page::{
            CrashParams, EventFrameStoppedLoading, EventLifecycleEvent, FrameId,
            ResetNavigationHistoryParams, SetDocumentContentParams,
        },
    },
    Page,
};
use futures::StreamExt;
use tokio::task::JoinHandle;

use super::{
    budget::Budget,
    cdp::{cdp_error, evaluate_as},
    fonts::FontFile,
    prints::PageProcess,
    problems::{Problems, Refusal},
};
use crate::{config::RenderLimits, error::RenderError, net::GuardedFetcher};

/// How long a page process may take to end once told to (see [`Target::stop`]).
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// How a target isolates the documents it renders (see `engine::isolation`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A reused tab of the shared browser context, with script execution turned off.
    Shared,
    /// The only tab of a browser context of its own, disposed of after one render or kept warm
    /// for its account's next document (`engine::warm`).
    Fresh(BrowserContextId),
}

pub(crate) struct Target {
    pub(crate) page: Page,
    /// Its page process, if it could be told (see `Instance::new_page`).
    process: Option<Arc<PageProcess>>,
    pub(crate) generation: u64,
    pub(crate) kind: Kind,
    main_frame: FrameId,
    scope: Arc<Mutex<Option<Arc<Scope>>>>,
    listener: JoinHandle<()>,
}

/// What a render on a shared tab leaves behind (see [`Target::leftovers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftovers {
    None,
    Requested,
    Fetched,
}

/// One render on a target: its budget, its fonts, and what went wrong with its requests.
pub(crate) struct Scope {
    pub(crate) budget: Budget,
    fonts: HashMap<String, Arc<FontFile>>,
    shared: bool,
    /// The render's, shared by every target it uses.
    problems: Arc<Problems>,
    /// Why the document needs a fresh context, when the interceptor found out (a frame in a
    /// shared tab).
    needs_scripts: Mutex<Option<String>>,
    /// The document tried to navigate away (and was stopped there).
    navigation_blocked: AtomicBool,
    /// The document asked for something (a request of any kind, fonts included).
    requested: AtomicBool,
    /// A frame of the document asked for a document at a real origin, which could leave
    /// storage, cookies or a service worker in the browser context.
    opened_origin: AtomicBool,
    /// When the render began (its document about to be set).
    begun: std::time::Instant,
}

impl Scope {
    pub(crate) fn new(
        limits: RenderLimits,
        fonts: HashMap<String, Arc<FontFile>>,
        shared: bool,
        problems: Arc<Problems>,
    ) -> Arc<Self> {
        Arc::new(Self {
            budget: Budget::new(limits),
            fonts,
            shared,
            problems,
            needs_scripts: Mutex::default(),
            navigation_blocked: AtomicBool::new(false),
            requested: AtomicBool::new(false),
            opened_origin: AtomicBool::new(false),
            begun: std::time::Instant::now(),
        })
    }

    fn note(&self, url: &str, reason: Refusal, why: &str) {
        self.problems.note(url, reason, why);
    }

    pub(crate) fn needs_scripts(&self) -> Option<String> {
        lock(&self.needs_scripts).clone()
    }

    pub(crate) fn opened_origin(&self) -> bool {
        self.opened_origin.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Target {
    /// Takes over `page`: every request intercepted, Chromium's refusals of local files
    /// noted, and, for a shared tab, script execution turned off for good.
    pub(crate) async fn open(
        (page, process): (Page, Option<Arc<PageProcess>>),
        generation: u64,
        kind: Kind,
        fetcher: GuardedFetcher,
    ) -> Result<Self, RenderError> {
        if kind == Kind::Shared {
            page.execute(SetScriptExecutionDisabledParams::new(true)).await.map_err(cdp_error)?;
        }
        // Nothing one document loaded is served to the next from a cache (a warm context's
        // next document is one).
        page.execute(SetCacheDisabledParams::new(true)).await.map_err(cdp_error)?;
        let main_frame = page
            .mainframe()
            .await
            .map_err(cdp_error)?
            .ok_or_else(|| RenderError::Browser(String::from("a new tab has no frame")))?;
        // Listen before enabling, or the first requests are missed.
        let mut paused = page.event_listener::<EventRequestPaused>().await.map_err(cdp_error)?;
        let pattern =
            RequestPattern::builder().url_pattern("*").request_stage(RequestStage::Request).build();
        page.execute(EnableParams::builder().pattern(pattern).build()).await.map_err(cdp_error)?;
        // Chromium refuses file:// on its own, before any request exists; its log says so.
        let mut log = page.event_listener::<EventEntryAdded>().await.map_err(cdp_error)?;
        page.execute(LogEnableParams::default()).await.map_err(cdp_error)?;
        let scope: Arc<Mutex<Option<Arc<Scope>>>> = Arc::default();
        let listener = tokio::spawn({
            let page = page.clone();
            let scope = scope.clone();
            let main_frame = main_frame.clone();
            async move {
                loop {
                    tokio::select! {
                        Some(event) = paused.next() => {
                            // The render the request belongs to is the one under way now.
                            let current = lock(&scope).clone();
                            // Each request on its own task: a slow image must not hold up a font.
                            tokio::spawn(answer(page.clone(), event, current, fetcher.clone(), main_frame.clone()));
                        }
                        Some(entry) = log.next() => {
                            if let Some(url) = entry.entry.text.strip_prefix("Not allowed to load local resource: ") {
                                if let Some(s) = lock(&scope).as_ref() {
                                    s.note(url, Refusal::LocalFile, "blocked: local files are never loaded");
                                }
                            }
                        }
                        else => break,
                    }
                }
            }
        });
        Ok(Self { page, process, generation, kind, main_frame, scope, listener })
    }

    /// Starts a render on this target: its requests are answered under `scope`.
    pub(crate) fn begin(&self, scope: Arc<Scope>) {
        *lock(&self.scope) = Some(scope);
    }

    pub(crate) fn page_process(&self) -> Option<Arc<PageProcess>> {
        self.process.clone()
    }

    /// When the render under way here began, if one is.
    pub(crate) fn render_begun(&self) -> Option<std::time::Instant> {
        lock(&self.scope).as_ref().map(|scope| scope.begun)
    }

    /// A long print lowered its page process's priority: the tab must serve no other render.
    pub(crate) fn lowered(&self) -> bool {
        self.process.as_ref().is_some_and(|p| p.lowered())
    }

    /// Ends the render: requests from now on are refused.
    pub(crate) fn end(&self) {
        lock(&self.scope).take();
    }

    /// Ends its page process at once, whatever the process's main thread is doing: the
    /// headless shell prints there (no compositor to stop), and a print past its deadline
    /// would go on taking a core for minutes after its tab closed. Chromium takes
    /// `Page.crash` on the process's IO thread, so a busy page cannot hold it up. Whether the
    /// process ended (Chromium said so within [`STOP_WAIT`]).
    pub(crate) async fn stop(&self) -> bool {
        let Ok(mut crashed) = self.page.event_listener::<EventTargetCrashed>().await else {
            return false;
        };
        // No answer comes from a process that crashed: the event is the answer.
        let crash = self.page.execute(CrashParams::default());
        let stopped = async {
            tokio::pin!(crash);
            tokio::select! {
                event = crashed.next() => event.is_some(),
                _ = &mut crash => crashed.next().await.is_some(),
            }
        };
        tokio::time::timeout(STOP_WAIT, stopped).await.unwrap_or(false)
    }

    /// Replaces the document with `html` (no request, no navigation: the tab keeps its blank
    /// origin, so the document can reach no storage) and waits for its load event, as a
    /// navigation would: its stylesheets, images and frames are in (or failed). `then`, a
    /// script of ours, runs on the parsed document in the same call (a round trip less) and
    /// its answer is returned.
    pub(crate) async fn set_document<T: serde::de::DeserializeOwned>(
        &self,
        html: &str,
        then: Option<&str>,
    ) -> Result<Option<T>, RenderError> {
        let write = format!(
            "(async (html) => {{ document.open(); document.write(html); document.close(); \
             return {}; }})({})",
            then.map_or_else(|| String::from("null"), |t| format!("await ({t})")),
            serde_json::Value::String(html.to_owned())
        );
        self.load(write).await
    }

    /// Runs `expression`, a script of ours that replaces the document (`document.open()`
    /// ... `document.close()`), and waits for the new document's load event; returns the
    /// script's answer.
    pub(crate) async fn load<T: serde::de::DeserializeOwned>(
        &self,
        expression: String,
    ) -> Result<Option<T>, RenderError> {
        let mut lifecycle =
            self.page.event_listener::<EventLifecycleEvent>().await.map_err(cdp_error)?;
        let mut stopped =
            self.page.event_listener::<EventFrameStoppedLoading>().await.map_err(cdp_error)?;
        let answer: Option<T> = evaluate_as(&self.page, expression).await?;
        // The new document's lifecycle starts at "init" (sent during the call, so before its
        // answer); a "load" before that belongs to an earlier document. A script that
        // navigates while the document is parsed stops the parser: there is no load then,
        // only the frame stopping once the navigation was refused.
        let mut started = false;
        loop {
            tokio::select! {
                Some(event) = lifecycle.next() => {
                    if event.frame_id != self.main_frame {
                        continue;
                    }
                    match event.name.as_str() {
                        "init" => started = true,
                        "load" if started => return Ok(answer),
                        _ => {}
                    }
                }
                Some(event) = stopped.next() => {
                    let blocked = lock(&self.scope).as_ref().is_some_and(|s| {
                        s.navigation_blocked.load(Ordering::SeqCst)
                    });
                    if event.frame_id == self.main_frame && blocked {
                        return Ok(answer);
                    }
                }
                else => break,
            }
        }
        Err(RenderError::Browser(String::from("the tab closed while its document loaded")))
    }

    /// A new, empty document (a navigation to `about:blank`): unlike replacing the content,
    /// this drops everything the old document held, the resources it loaded included (a
    /// document reuses what it loaded before, whatever the cache settings).
    pub(crate) async fn blank(&self) -> Result<(), RenderError> {
        self.page.goto("about:blank").await.map_err(cdp_error)?;
        Ok(())
    }

    /// Readies the tab of a warm context for its account's next document: a new blank document
    /// (a new window at a new opaque origin, so the old document's globals, timers, workers and
    /// loads end with it), no history, and no window name, the one thing of a document that a
    /// tab keeps for the next.
    pub(crate) async fn reset(&self) -> Result<(), RenderError> {
        self.blank().await?;
        evaluate_as::<serde_json::Value>(&self.page, String::from("window.name = ''")).await?;
        self.page.execute(ResetNavigationHistoryParams::default()).await.map_err(cdp_error)?;
        Ok(())
    }

    /// What the render under way left to clean up: nothing if its document asked for
    /// nothing; loads to stop if it asked only for its fonts (from our cache) or `data:` URLs;
    /// resources it must not pass on if it loaded anything from the network.
    pub(crate) fn leftovers(&self) -> Leftovers {
        match lock(&self.scope).as_ref() {
            Some(s) if s.budget.requests() > 0 => Leftovers::Fetched,
            Some(s) if s.requested.load(Ordering::SeqCst) => Leftovers::Requested,
            _ => Leftovers::None,
        }
    }

    /// Replaces the document by an empty one (which stops whatever it was still loading),
    /// without waiting for anything.
    pub(crate) async fn empty(&self) -> Result<(), RenderError> {
        self.page
            .execute(SetDocumentContentParams::new(self.main_frame.clone(), String::new()))
            .await
            .map_err(cdp_error)?;
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn answer(
    page: Page,
    event: Arc<EventRequestPaused>,
    scope: Option<Arc<Scope>>,
    fetcher: GuardedFetcher,
    main_frame: FrameId,
) {
    let url = event.request.url.as_str();
    let id = event.request_id.clone();
    let fail = |reason: ErrorReason| page.execute(FailRequestParams::new(id.clone(), reason));
    let Some(scope) = scope else {
        let _ = fail(ErrorReason::Aborted).await;
        return;
    };
    scope.requested.store(true, Ordering::SeqCst);
    if url.starts_with("data:") || url.starts_with("blob:") || url.starts_with("about:") {
        let _ = page.execute(ContinueRequestParams::new(id)).await;
        return;
    }
    if event.resource_type == ResourceType::Document {
        // The document stays what it was given: a navigation away (a script, a meta refresh,
        // a form) is dropped (aborted, so no error page replaces the document).
        if event.frame_id == main_frame {
            scope.note(url, Refusal::Navigation, "blocked: a document cannot navigate away");
            scope.navigation_blocked.store(true, Ordering::SeqCst);
            let _ = fail(ErrorReason::Aborted).await;
            return;
        }
        // A frame's document may run scripts of its own: not in a shared tab.
        if scope.shared {
            lock(&scope.needs_scripts).get_or_insert_with(|| String::from("a frame"));
            let _ = fail(ErrorReason::Aborted).await;
            return;
        }
        scope.opened_origin.store(true, Ordering::SeqCst);
    }
    if let Some(font) = scope.fonts.get(url) {
        let _ = page.execute(fulfill(id, 200, Some(font.mime), font.base64.to_string())).await;
        return;
    }
    if !matches!(event.request.method.as_str(), "GET" | "HEAD") {
        let why = format!("{} requests are not allowed", event.request.method);
        scope.note(url, Refusal::Method, &why);
        let _ = fail(ErrorReason::BlockedByClient).await;
        return;
    }
    let _slot = match scope.budget.admit().await {
        Ok(slot) => slot,
        Err(limit) => {
            scope.note(url, Refusal::Limit, &format!("refused: {limit}"));
            let _ = fail(ErrorReason::BlockedByClient).await;
            return;
        }
    };
    let budget = &scope.budget;
    let fetched =
        fetcher.get_counted(url, budget.resource_limit(), |n| budget.take_bytes(n).is_ok()).await;
    match fetched {
        Ok(fetched) => {
            if fetched.status >= 400 {
                scope.note(url, Refusal::Status, &format!("answered {}", fetched.status));
            }
            let body = BASE64.encode(&fetched.body);
            let params = fulfill(id, fetched.status, fetched.content_type.as_deref(), body);
            drop(fetched);
            let _ = page.execute(params).await;
        }
        Err(e) => {
            let (reason, refusal) = match e {
                crate::net::FetchError::Blocked(_) => {
                    (ErrorReason::BlockedByClient, Refusal::Blocked)
                }
                crate::net::FetchError::Timeout(_) => (ErrorReason::TimedOut, Refusal::Timeout),
                crate::net::FetchError::TooLarge(limit) => {
                    scope.budget.trip(crate::error::LimitExceeded::ResourceBytes(limit));
                    (ErrorReason::BlockedByClient, Refusal::TooLarge)
                }
                crate::net::FetchError::OverBudget => {
                    (ErrorReason::BlockedByClient, Refusal::Limit)
                }
                crate::net::FetchError::Failed(_) => (ErrorReason::Failed, Refusal::Failed),
            };
            scope.note(url, refusal, &e.to_string());
            let _ = fail(reason).await;
        }
    }
}

fn fulfill(
    id: chromiumoxide::cdp::browser_protocol::fetch::RequestId,
    status: u16,
    content_type: Option<&str>,
    body_base64: String,
) -> FulfillRequestParams {
    // Only these headers reach the page: no Set-Cookie, no caching rules, nothing of the origin.
    let mut headers = vec![HeaderEntry::new("Access-Control-Allow-Origin", "*")];
    if let Some(ct) = content_type {
        headers.push(HeaderEntry::new("Content-Type", ct));
    }
    let mut params = FulfillRequestParams::new(id, i64::from(status));
    params.response_headers = Some(headers);
    params.body = Some(body_base64.into());
    params
}
