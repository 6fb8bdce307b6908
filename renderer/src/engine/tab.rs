//! A tab and its request interceptor: every request the page makes is paused and answered here
//! (font files from the font cache, anything else through the guarded fetcher, or refused), so
//! Chromium itself never touches the network.

use std::sync::{Arc, Mutex};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use chromiumoxide::{
    cdp::browser_protocol::{
        fetch::{
            ContinueRequestParams, EnableParams, EventRequestPaused, FailRequestParams,
            FulfillRequestParams, HeaderEntry, RequestPattern, RequestStage,
        },
        log::{EnableParams as LogEnableParams, EventEntryAdded},
        network::ErrorReason,
    },
    Page,
};
use futures::StreamExt;
use tailpdf_shared::url_guard::redact_url;
use tokio::task::JoinHandle;

use crate::{error::RenderError, fonts::FontLibrary, net::GuardedFetcher};

/// What the interceptor needs, shared by every tab.
pub(crate) struct Resources {
    pub(crate) fonts: Arc<FontLibrary>,
    pub(crate) fetcher: GuardedFetcher,
}

pub(crate) struct Tab {
    pub(crate) page: Page,
    pub(crate) generation: u64,
    /// Requests refused or failed during the current render (URLs without their query).
    pub(crate) problems: Arc<Mutex<Vec<String>>>,
    listener: JoinHandle<()>,
}

impl Tab {
    pub(crate) async fn open(
        page: Page,
        generation: u64,
        resources: Arc<Resources>,
    ) -> Result<Self, RenderError> {
        let browser_err = |e: chromiumoxide::error::CdpError| RenderError::Browser(e.to_string());
        // Listen before enabling, or the first requests are missed.
        let mut paused = page.event_listener::<EventRequestPaused>().await.map_err(browser_err)?;
        let pattern =
            RequestPattern::builder().url_pattern("*").request_stage(RequestStage::Request).build();
        page.execute(EnableParams::builder().pattern(pattern).build())
            .await
            .map_err(browser_err)?;
        // Chromium refuses file:// on its own, before any request exists; its log says so.
        let mut log = page.event_listener::<EventEntryAdded>().await.map_err(browser_err)?;
        page.execute(LogEnableParams::default()).await.map_err(browser_err)?;
        let problems: Arc<Mutex<Vec<String>>> = Arc::default();
        let listener = tokio::spawn({
            let page = page.clone();
            let problems = problems.clone();
            async move {
                loop {
                    tokio::select! {
                        Some(event) = paused.next() => {
                            // Each request on its own task: a slow image must not hold up a font.
                            tokio::spawn(answer(page.clone(), event, resources.clone(), problems.clone()));
                        }
                        Some(entry) = log.next() => {
                            if let Some(url) = entry.entry.text.strip_prefix("Not allowed to load local resource: ") {
                                if let Ok(mut p) = problems.lock() {
                                    p.push(format!("{} (blocked: local files are never loaded)", redact_url(url)));
                                }
                            }
                        }
                        else => break,
                    }
                }
            }
        });
        Ok(Self { page, generation, problems, listener })
    }

    pub(crate) fn take_problems(&self) -> Vec<String> {
        self.problems.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }
}

impl Drop for Tab {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

async fn answer(
    page: Page,
    event: Arc<EventRequestPaused>,
    resources: Arc<Resources>,
    problems: Arc<Mutex<Vec<String>>>,
) {
    let url = event.request.url.as_str();
    let id = event.request_id.clone();
    let note = |why: String| {
        if let Ok(mut p) = problems.lock() {
            p.push(format!("{} ({why})", redact_url(url)));
        }
    };
    if url.starts_with("data:") || url.starts_with("blob:") || url.starts_with("about:") {
        let _ = page.execute(ContinueRequestParams::new(id)).await;
        return;
    }
    if let Some(font) = resources.fonts.file(url) {
        let _ = page.execute(fulfill(id, 200, Some(font.mime), font.base64.to_string())).await;
        return;
    }
    if !matches!(event.request.method.as_str(), "GET" | "HEAD") {
        note(format!("{} requests are not allowed", event.request.method));
        let _ = page.execute(FailRequestParams::new(id, ErrorReason::BlockedByClient)).await;
        return;
    }
    match resources.fetcher.get(url).await {
        Ok(fetched) => {
            if fetched.status >= 400 {
                note(format!("answered {}", fetched.status));
            }
            let body = BASE64.encode(&fetched.body);
            let params = fulfill(id, fetched.status, fetched.content_type.as_deref(), body);
            let _ = page.execute(params).await;
        }
        Err(e) => {
            let reason = match e {
                crate::net::FetchError::Blocked(_) => ErrorReason::BlockedByClient,
                crate::net::FetchError::Timeout(_) => ErrorReason::TimedOut,
                _ => ErrorReason::Failed,
            };
            note(e.to_string());
            let _ = page.execute(FailRequestParams::new(id, reason)).await;
        }
    }
}

fn fulfill(
    id: chromiumoxide::cdp::browser_protocol::fetch::RequestId,
    status: u16,
    content_type: Option<&str>,
    body_base64: String,
) -> FulfillRequestParams {
    let mut headers = vec![HeaderEntry::new("Access-Control-Allow-Origin", "*")];
    if let Some(ct) = content_type {
        headers.push(HeaderEntry::new("Content-Type", ct));
    }
    let mut params = FulfillRequestParams::new(id, i64::from(status));
    params.response_headers = Some(headers);
    params.body = Some(body_base64.into());
    params
}
