//! `tailpdf-renderer serve`: the engine as the edge's render backend.
//!
//! - [`http`]: `POST /render`, `POST /jobs/take`, `POST /jobs` and `POST /jobs/group` (push
//!   mode), `/healthz`, `/readyz`, `/metrics`;
//! - [`takes`]: push mode's jobs taken and answered at once, and what became of each;
//! - [`runner`]: one job to its end, reporting each state to the edge ([`edge`]) and uploading
//!   the PDF ([`upload`]);
//! - [`pull`]: pull mode, Cloudflare Queues' HTTP pull consumer;
//! - [`metrics`], [`retry`]: the OpenMetrics exposition (prometheus-client) and backoff
//!   schedules.
//!
//! - [`admission`]: the places (tabs, guest tabs and a small bounded wait queue) shared so no
//!   account takes them all; past them, requests are answered 503 with `Retry-After` at once,
//!   never queued without bound. Which admitted render gets a tab is `engine::schedule`'s.

pub mod admission;
pub mod edge;
pub mod error;
pub mod http;
pub mod metrics;
pub mod pull;
pub mod retry;
pub mod runner;
pub mod takes;
pub mod upload;

use std::{
    future::Future,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, OnceLock,
    },
    time::Duration,
};

use axum::ServiceExt as _;
use tower::ServiceExt as _;

use clap::Args;
use url::Url;

use crate::{
    config::{parse_duration, EngineConfig},
    engine::Engine,
    net::GuardedFetcher,
};

#[derive(Args, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "TAILPDF_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// The edge's origin (events and large specs go there), without a path.
    #[arg(
        long,
        env = "TAILPDF_EDGE_URL",
        default_value = "http://127.0.0.1:8787",
        value_parser = tailpdf_shared::origin::parse_origin
    )]
    pub edge_url: Url,

    /// Secret shared with the edge for X-TailPDF-Internal signatures.
    #[arg(long, env = "TAILPDF_INTERNAL_SECRET", hide_env_values = true)]
    pub internal_secret: String,

    /// Requests that may wait for a tab beyond those rendering; more are answered 503. One
    /// account holds at most all places (tabs, guest tabs and these) but two.
    #[arg(long, env = "TAILPDF_QUEUE_SIZE", default_value_t = 4)]
    pub queue_size: usize,

    /// On SIGTERM/SIGINT, how long jobs in flight may take to finish.
    #[arg(long, env = "TAILPDF_GRACE_PERIOD", default_value = "30s", value_parser = parse_duration)]
    pub grace_period: Duration,

    /// Deadline of one upload attempt.
    #[arg(long, env = "TAILPDF_UPLOAD_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub upload_timeout: Duration,

    /// Time within which failed uploads (5xx, connection errors) are retried.
    #[arg(long, env = "TAILPDF_UPLOAD_RETRY_BUDGET", default_value = "60s", value_parser = parse_duration)]
    pub upload_retry_budget: Duration,

    /// Time within which unacknowledged events to the edge are sent again.
    #[arg(long, env = "TAILPDF_EVENT_RETRY_BUDGET", default_value = "60s", value_parser = parse_duration)]
    pub event_retry_budget: Duration,

    /// Deliveries of a job before a retryable render failure becomes final.
    #[arg(long, env = "TAILPDF_MAX_ATTEMPTS", default_value_t = 3)]
    pub max_attempts: u32,

    /// Documents of one batch printed together at most, on one page in one print (see
    /// BENCHMARKS.md, "Batches", for how the default was chosen).
    #[arg(long, env = "TAILPDF_GROUP_SIZE", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub group_size: u32,

    /// Pull jobs from Cloudflare Queues instead of waiting for the edge to push them.
    #[arg(long, env = "TAILPDF_PULL")]
    pub pull: bool,

    /// Cloudflare API base (pull mode).
    #[arg(
        long,
        env = "TAILPDF_CF_API_BASE",
        default_value = "https://api.cloudflare.com/client/v4"
    )]
    pub cf_api_base: Url,

    /// Cloudflare account id (pull mode).
    #[arg(long, env = "TAILPDF_CF_ACCOUNT_ID", required_if_eq("pull", "true"))]
    pub cf_account_id: Option<String>,

    /// The render-jobs queue's id (pull mode).
    #[arg(long, env = "TAILPDF_CF_QUEUE_ID", required_if_eq("pull", "true"))]
    pub cf_queue_id: Option<String>,

    /// The render-batches queue's id (pull mode): documents of `POST /pdf/batch`, pulled by a
    /// second loop and printed together. Unset: that queue's messages are not pulled here.
    #[arg(long, env = "TAILPDF_CF_BATCH_QUEUE_ID")]
    pub cf_batch_queue_id: Option<String>,

    /// API token with Queues Edit permission (pull mode).
    #[arg(
        long,
        env = "TAILPDF_CF_API_TOKEN",
        hide_env_values = true,
        required_if_eq("pull", "true")
    )]
    pub cf_api_token: Option<String>,

    /// Pause between pulls when the queue is empty.
    #[arg(long, env = "TAILPDF_PULL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub pull_interval: Duration,

    /// How long a pulled job is leased to this renderer (pull mode); if the renderer dies, its
    /// jobs go to another once it passes. The default is the longest one job can take here
    /// (waits, events, render, upload and their retries, plus a minute), so that no lease
    /// ever expires under a live job; shorter brings a dead renderer's jobs back sooner, but a
    /// job that outlives its lease runs twice (the edge keeps its first end).
    #[arg(long, env = "TAILPDF_VISIBILITY_TIMEOUT", value_parser = parse_duration)]
    pub visibility_timeout: Option<Duration>,

    #[command(flatten)]
    pub engine: EngineConfig,
}

impl ServeConfig {
    /// Requests admitted at once: a place per tab and guest tab, and `--queue-size` more.
    pub fn places(&self) -> usize {
        crate::engine::schedule::Shares::of(&self.engine).ahead() + self.queue_size
    }

    /// One pull loop per queue: render-jobs, and render-batches when its id is given.
    fn pull_settings(&self) -> Vec<pull::PullSettings> {
        let Some(jobs) = self.pull_settings_for(self.cf_queue_id.clone()) else {
            return Vec::new();
        };
        let batches = self.pull_settings_for(self.cf_batch_queue_id.clone());
        std::iter::once(jobs).chain(batches).collect()
    }

    fn pull_settings_for(&self, queue_id: Option<String>) -> Option<pull::PullSettings> {
        if !self.pull {
            return None;
        }
        Some(pull::PullSettings {
            api_base: self.cf_api_base.clone(),
            account_id: self.cf_account_id.clone()?,
            queue_id: queue_id?,
            api_token: self.cf_api_token.clone()?,
            interval: self.pull_interval,
            parking: self.places(),
            visibility_timeout: self.visibility_timeout.map_or_else(
                || {
                    pull::JobBounds {
                        render_timeout: self.engine.render_timeout,
                        tabs: self.engine.tabs(),
                        ahead: self.places() * 2,
                        upload_timeout: self.upload_timeout,
                        upload_retry_budget: self.upload_retry_budget,
                        event_retry_budget: self.event_retry_budget,
                        edge_call_timeout: edge::CALL_TIMEOUT,
                    }
                    .worst_case()
                },
                // The API's bounds: a whole second, 12 hours.
                |lease| lease.clamp(Duration::from_secs(1), pull::MAX_VISIBILITY),
            ),
        })
    }
}

pub struct AppState {
    pub(crate) runner: runner::Runner,
    pub(crate) metrics: Arc<metrics::Metrics>,
    pub(crate) secret: String,
    pub(crate) places: admission::Places,
    pub(crate) takes: takes::Takes,
    closing: AtomicBool,
}

impl AppState {
    /// A place for `account`'s request, if the rules leave one ([`admission`]).
    pub(crate) fn admit(
        &self,
        account: &str,
        purpose: admission::Purpose,
    ) -> Option<admission::Place> {
        if self.is_closing() {
            return None;
        }
        self.places.admit(account, purpose)
    }

    /// How many pushed jobs may wait here for a place: as many as there are places, an
    /// account's share of them its own.
    pub(crate) fn parking(&self) -> takes::Parking {
        takes::Parking { all: self.places.capacity(), per_account: self.places.jobs_per_account() }
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

/// Runs the service on `listener` until `shutdown` resolves, then stops taking work, lets jobs
/// in flight finish within the grace period, hands back what remains and closes Chromium.
pub async fn run(
    cfg: ServeConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Served from the first moment: `http::starting` until the engine is ready, the
    // service's own router after.
    let app: Arc<OnceLock<axum::Router>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let local = listener.local_addr().ok();
    let server = {
        let (app, starting) = (app.clone(), http::starting());
        let route = tower::service_fn(move |request: axum::extract::Request| {
            let router = app.get().cloned().unwrap_or_else(|| starting.clone());
            router.oneshot(request)
        });
        let mut server_stop = stop_rx.clone();
        let server =
            axum::serve(listener, route.into_make_service()).with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            });
        tokio::spawn(async move { server.await })
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let started = async {
        let engine = Engine::start(cfg.engine.clone()).await?;
        // `/readyz` says ready only once the first renders would be as quick as later ones.
        engine.warm().await;
        Ok::<_, crate::error::RenderError>(engine)
    };
    let engine = tokio::select! {
        started = started => started,
        () = &mut shutdown => {
            tracing::info!("stopped while starting");
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
            return Ok(());
        }
    };
    let engine = match engine {
        Ok(engine) => engine,
        Err(e) => {
            let _ = stop_tx.send(true);
            return Err(anyhow::anyhow!("{e}"));
        }
    };
    let metrics = Arc::new(metrics::Metrics::default());
    let places = admission::Places::new(cfg.places());
    // Nothing of an upload's answer is read but its status.
    let uploads = GuardedFetcher::new(cfg.engine.url_policy(), cfg.upload_timeout, 64 * 1024)?;
    let runner = runner::Runner {
        uploads,
        upload_policy: upload::UploadPolicy {
            attempt_timeout: cfg.upload_timeout,
            budget: cfg.upload_retry_budget,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        },
        edge: edge::EdgeClient::new(
            cfg.edge_url.clone(),
            cfg.internal_secret.clone(),
            cfg.event_retry_budget,
        )?,
        max_attempts: cfg.max_attempts.max(1),
        metrics: metrics.clone(),
        engine: engine.clone(),
        group_size: cfg.group_size as usize,
    };
    let state = Arc::new(AppState {
        runner,
        metrics,
        secret: cfg.internal_secret.clone(),
        places: places.clone(),
        takes: takes::Takes::default(),
        closing: AtomicBool::new(false),
    });

    let queues = cfg
        .pull_settings()
        .into_iter()
        .map(pull::QueueClient::new)
        .collect::<Result<Vec<_>, _>>()?;
    let pullers: Vec<_> = queues
        .into_iter()
        .map(|queue| {
            tokio::spawn(pull::run(state.clone(), queue, stop_rx.clone(), cfg.grace_period))
        })
        .collect();

    let _ = app.set(http::router(state.clone()));
    tracing::info!(listen = ?local, pull = cfg.pull, tabs = engine.tabs(), "renderer ready");

    shutdown.await;
    tracing::info!(grace = ?cfg.grace_period, "shutting down: no new work, finishing jobs in flight");
    state.closing.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    // No new request gets a place (pulled jobs waiting for one are handed back); those in
    // flight (push jobs, sync renders) finish within the grace period.
    places.close();
    let _ = tokio::time::timeout(cfg.grace_period, places.drained()).await;
    let _ = tokio::time::timeout(
        cfg.grace_period + Duration::from_secs(15),
        futures::future::join_all(pullers),
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    engine.shutdown(Duration::from_secs(5)).await;
    tracing::info!("renderer stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
