//! `/metrics` through prometheus-client, in the OpenMetrics text format: the service's own
//! counters, gauges and histograms live in a registry; the engine's counts and readiness are
//! read at each scrape (a collector over the snapshot the handler takes).

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Arc, Mutex},
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::{ConstGauge, Gauge},
        histogram::Histogram,
    },
    registry::Registry,
};

use super::pull::Backlog;
use crate::engine::{problems::Refusal, schedule::Load, EngineStats};

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const BUCKETS: [f64; 12] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

type Outcome = [(&'static str, &'static str); 1];
type QueueLabel = [(&'static str, String); 1];
type Step = [(&'static str, &'static str); 1];

/// A histogram of durations, in seconds (a handle: clones share the counts).
#[derive(Debug, Clone)]
pub struct Seconds(Histogram);

impl Default for Seconds {
    fn default() -> Self {
        Self(Histogram::new(BUCKETS))
    }
}

impl Seconds {
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

/// What is read at each scrape besides the engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// The scheduler's renders running and waiting, and their accounts.
    pub load: Load,
    /// Places held by requests (sync renders, jobs, groups), waiting or running.
    pub places_in_use: usize,
    /// Shared tabs open and free.
    pub shared_tabs_idle: usize,
    /// Browser contexts made ahead.
    pub spare_contexts: usize,
    /// Tabs that render at once (`--tabs`), guest tabs not counted.
    pub tabs: usize,
}

/// The engine's side, as of the last scrape.
#[derive(Debug, Default)]
struct Snapshot(Mutex<(EngineStats, Gauges)>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let (engine, gauges) = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        let renders = [("ok", engine.renders), ("failed", engine.failures)];
        let counter = ConstCounter::new(0u64);
        let mut family = encoder.encode_descriptor(
            "tailpdf_renders",
            "Renders by outcome (sync renders and jobs' renders, counted by the engine).",
            None,
            counter.metric_type(),
        )?;
        for (outcome, n) in renders {
            ConstCounter::new(n).encode(family.encode_family(&[("outcome", outcome)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "tailpdf_refused_requests",
            "Requests of documents not loaded (refused by the URL guard or a limit, or failed), \
             by reason.",
            None,
            counter.metric_type(),
        )?;
        for (reason, n) in Refusal::ALL.iter().zip(engine.refused) {
            ConstCounter::new(n).encode(family.encode_family(&[("reason", reason.label())])?)?;
        }
        let counters = [
            (
                "tailpdf_postprocess_failures",
                "Renders whose post-processing (metadata, PDF/A, encryption) failed.",
                engine.postprocess_failures,
            ),
            (
                "tailpdf_browser_restarts",
                "Chromium starts after the first (restarts and crash recoveries).",
                engine.browser_starts.saturating_sub(1),
            ),
            ("tailpdf_tabs_replaced", "Tabs closed and replaced (deadline, error).", engine.tabs_replaced),
            (
                "tailpdf_isolated_renders",
                "Renders in a browser context of their own (documents that run scripts).",
                engine.isolated_renders,
            ),
            (
                "tailpdf_warm_context_reuses",
                "Of those, renders in a context their account's previous one left warm.",
                engine.warm_reuses,
            ),
            (
                "tailpdf_rest_collections",
                "Times Chromium collected its garbage once renders stopped (--rest-after).",
                engine.rest_collections,
            ),
            (
                "tailpdf_escalations",
                "Documents rendered again in a fresh context once their DOM showed they need scripts.",
                engine.escalations,
            ),
            (
                "tailpdf_grouped_documents",
                "Batch documents printed in a group page with others of their batch.",
                engine.grouped,
            ),
            (
                "tailpdf_group_fallbacks",
                "Groups that could not be printed as one; their documents were rendered alone.",
                engine.group_fallbacks,
            ),
            (
                "tailpdf_print_compositors_stopped",
                "Chromium print compositors stopped after their print passed its deadline.",
                engine.compositors_stopped,
            ),
            (
                "tailpdf_print_pages_stopped",
                "Page processes stopped after their render passed its deadline or failed.",
                engine.pages_stopped,
            ),
            (
                "tailpdf_limit_failures",
                "Renders that crossed a limit (requests, bytes, pages, classes, CSS, compiler time).",
                engine.limit_failures,
            ),
        ];
        for (name, help, n) in counters {
            let counter = ConstCounter::new(n);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let gauges = [
            ("tailpdf_backlog", "Renders waiting for a tab.", gauges.load.waiting),
            ("tailpdf_tabs_busy", "Renders running, guest tabs included.", gauges.load.running),
            (
                "tailpdf_tabs",
                "Tabs that render at once (--tabs), guest tabs not counted.",
                gauges.tabs,
            ),
            (
                "tailpdf_tabs_free",
                "Tabs free for another render now (--tabs less those busy): 0 while the \
                 renderer is full.",
                gauges.tabs.saturating_sub(gauges.load.running),
            ),
            (
                "tailpdf_accounts_active",
                "Accounts with renders running or waiting.",
                gauges.load.accounts,
            ),
            (
                "tailpdf_places_in_use",
                "Places held by sync renders, jobs and groups, waiting or running.",
                gauges.places_in_use,
            ),
            ("tailpdf_tabs_idle", "Shared tabs open and free.", gauges.shared_tabs_idle),
            (
                "tailpdf_spare_contexts",
                "Browser contexts made ahead for documents that run scripts.",
                gauges.spare_contexts,
            ),
        ];
        for (name, help, n) in gauges {
            let gauge = ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// The service's metrics; `render` writes them all.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    snapshot: Arc<Snapshot>,
    jobs: Family<Outcome, Counter>,
    pub jobs_in_flight: Gauge,
    pub rejected_full: Counter,
    pub pulls: Counter,
    pub messages_pulled: Counter,
    pub acks: Counter,
    pub retries: Counter,
    pub render_seconds: Seconds,
    /// The post-processing stage, by step (`metadata`, `pdfa`, `encrypt`).
    postprocess_seconds: Family<Step, Histogram>,
    pub upload_seconds: Seconds,
    /// A job's whole stay here: spec, events, render and upload.
    pub job_seconds: Seconds,
    /// The queue's backlog as its last answer told it, by queue id (pull mode).
    queue_backlog: Family<QueueLabel, Gauge>,
    queue_backlog_bytes: Family<QueueLabel, Gauge>,
    /// Set at each scrape from `oldest_sent`.
    queue_oldest_age: Family<QueueLabel, Gauge<f64, AtomicU64>>,
    oldest_sent: Mutex<HashMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let snapshot = Arc::new(Snapshot::default());
        registry.register_collector(Box::new(snapshot.clone()));
        let jobs = Family::<Outcome, Counter>::default();
        registry.register("tailpdf_jobs", "Jobs by how they ended here.", jobs.clone());
        let jobs_in_flight = Gauge::default();
        registry.register("tailpdf_jobs_in_flight", "Jobs being run now.", jobs_in_flight.clone());
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let rejected_full = counter(
            &mut registry,
            "tailpdf_rejected",
            "Requests answered 503 because every tab and queue place was taken.",
        );
        let pulls = counter(&mut registry, "tailpdf_queue_pulls", "Pull requests to the queue.");
        let messages_pulled =
            counter(&mut registry, "tailpdf_queue_messages", "Messages pulled from the queue.");
        let acks = counter(&mut registry, "tailpdf_queue_acks", "Messages acknowledged.");
        let retries =
            counter(&mut registry, "tailpdf_queue_retries", "Messages handed back for redelivery.");
        let histogram = |registry: &mut Registry, name: &str, help: &str| {
            let h = Seconds::default();
            registry.register(name, help, h.0.clone());
            h
        };
        let render_seconds =
            histogram(&mut registry, "tailpdf_render_duration_seconds", "Time to render a PDF.");
        let postprocess_seconds =
            Family::<Step, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
        registry.register(
            "tailpdf_postprocess_duration_seconds",
            "Time of each post-processing step of a PDF (metadata, pdfa, encrypt); part of the \
             render's time.",
            postprocess_seconds.clone(),
        );
        let upload_seconds = histogram(
            &mut registry,
            "tailpdf_upload_duration_seconds",
            "Time to upload a PDF, retries included.",
        );
        let job_seconds = histogram(
            &mut registry,
            "tailpdf_job_duration_seconds",
            "Time a job spends in this renderer, from its arrival to its end: spec, events, \
             render and upload.",
        );
        let queue_backlog = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "tailpdf_queue_backlog_messages",
            "Messages of the queue not yet acknowledged (leased ones included), as the queue's \
             last pull or ack answer said (pull mode): the signal to scale renderers on.",
            queue_backlog.clone(),
        );
        let queue_backlog_bytes = Family::<QueueLabel, Gauge>::default();
        registry.register(
            "tailpdf_queue_backlog_bytes",
            "Bytes of the queue's messages not yet acknowledged, as its last answer said.",
            queue_backlog_bytes.clone(),
        );
        let queue_oldest_age = Family::<QueueLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "tailpdf_queue_oldest_message_age_seconds",
            "How long the queue's oldest unacknowledged message has waited, at this scrape (0: \
             none, or unknown).",
            queue_oldest_age.clone(),
        );
        Self {
            registry,
            snapshot,
            queue_backlog,
            queue_backlog_bytes,
            queue_oldest_age,
            oldest_sent: Mutex::default(),
            jobs,
            jobs_in_flight,
            rejected_full,
            pulls,
            messages_pulled,
            acks,
            retries,
            render_seconds,
            postprocess_seconds,
            upload_seconds,
            job_seconds,
        }
    }
}

impl Metrics {
    /// Counts a job that ended here: `completed`, `failed` or `retry`.
    pub fn job_ended(&self, outcome: &'static str) {
        self.jobs.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// A finished render: its time, and its post-processing steps'.
    pub fn rendered(&self, r: &crate::engine::Rendered) {
        self.render_seconds.observe(r.duration);
        for step in &r.steps {
            self.postprocess_seconds
                .get_or_create(&[("step", step.name)])
                .observe(step.took.as_secs_f64());
        }
    }

    /// What an answer of queue `queue` said of its backlog, if it said.
    pub fn queue_backlog(&self, queue: &str, backlog: Option<Backlog>) {
        let Some(backlog) = backlog else { return };
        let label = [("queue", queue.to_owned())];
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.queue_backlog.get_or_create(&label).set(gauge(backlog.backlog_count));
        self.queue_backlog_bytes.get_or_create(&label).set(gauge(backlog.backlog_bytes));
        // An empty queue has no oldest message, whatever the answer's timestamp.
        let oldest =
            if backlog.backlog_count == 0 { 0 } else { backlog.oldest_message_timestamp_ms };
        self.oldest_sent.lock().unwrap_or_else(|e| e.into_inner()).insert(queue.to_owned(), oldest);
    }

    /// The exposition, with the engine's counters and the gauges read now.
    pub fn render(&self, engine: EngineStats, gauges: Gauges) -> String {
        *self.snapshot.0.lock().unwrap_or_else(|e| e.into_inner()) = (engine, gauges);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        for (queue, sent) in self.oldest_sent.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let age = if *sent == 0 { 0.0 } else { now_ms.saturating_sub(*sent) as f64 / 1000.0 };
            self.queue_oldest_age.get_or_create(&[("queue", queue.clone())]).set(age);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_gauges_and_cumulative_buckets() {
        let m = Metrics::default();
        let rendered = |ms: u64, steps: Vec<crate::postprocess::Step>| crate::engine::Rendered {
            pdf: Vec::new(),
            duration: Duration::from_millis(ms),
            problems: Vec::new(),
            isolated: false,
            steps,
        };
        m.rendered(&rendered(40, Vec::new()));
        let step = |name, ms| crate::postprocess::Step { name, took: Duration::from_millis(ms) };
        m.rendered(&rendered(700, vec![step("metadata", 3), step("encrypt", 30)]));
        m.job_ended("completed");
        m.job_ended("completed");
        m.acks.inc();
        let mut refused = [0; Refusal::ALL.len()];
        refused[0] = 7;
        let stats = EngineStats {
            renders: 2,
            failures: 1,
            browser_starts: 3,
            escalations: 4,
            postprocess_failures: 5,
            refused,
            ..EngineStats::default()
        };
        let gauges = Gauges {
            load: Load { running: 3, waiting: 2, accounts: 2 },
            places_in_use: 5,
            shared_tabs_idle: 1,
            spare_contexts: 2,
            tabs: 4,
        };
        let text = m.render(stats, gauges);
        for line in [
            "tailpdf_escalations_total 4",
            "tailpdf_renders_total{outcome=\"ok\"} 2",
            "tailpdf_renders_total{outcome=\"failed\"} 1",
            "tailpdf_browser_restarts_total 2",
            "tailpdf_jobs_total{outcome=\"completed\"} 2",
            "tailpdf_queue_acks_total 1",
            "tailpdf_backlog 2",
            "tailpdf_tabs_busy 3",
            "tailpdf_tabs 4",
            "tailpdf_tabs_free 1",
            "tailpdf_accounts_active 2",
            "tailpdf_places_in_use 5",
            "tailpdf_refused_requests_total{reason=\"blocked\"} 7",
            "tailpdf_refused_requests_total{reason=\"timeout\"} 0",
            "tailpdf_tabs_idle 1",
            "tailpdf_spare_contexts 2",
            "tailpdf_render_duration_seconds_bucket{le=\"0.05\"} 1",
            "tailpdf_render_duration_seconds_bucket{le=\"1.0\"} 2",
            "tailpdf_render_duration_seconds_count 2",
            "tailpdf_postprocess_failures_total 5",
            "tailpdf_postprocess_duration_seconds_bucket{le=\"0.025\",step=\"metadata\"} 1",
            "tailpdf_postprocess_duration_seconds_bucket{le=\"0.025\",step=\"encrypt\"} 0",
            "tailpdf_postprocess_duration_seconds_count{step=\"encrypt\"} 1",
            "# TYPE tailpdf_render_duration_seconds histogram",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        let sum = text.lines().find_map(|l| l.strip_prefix("tailpdf_render_duration_seconds_sum "));
        assert!((sum.unwrap().parse::<f64>().unwrap() - 0.74).abs() < 1e-9);
    }

    /// The queue's backlog as its answers tell it, by queue; the oldest message's age at the
    /// scrape; an answer without metrics changes nothing, an empty queue has no oldest.
    #[test]
    fn the_queue_backlog_is_what_its_last_answer_said() {
        let m = Metrics::default();
        let line = |text: &str, name: &str| {
            let prefix = format!("{name}{{queue=\"q1\"}} ");
            text.lines().find_map(|l| Some(l.strip_prefix(&prefix)?.parse::<f64>().unwrap()))
        };
        let scrape = || m.render(EngineStats::default(), Gauges::default());
        assert_eq!(line(&scrape(), "tailpdf_queue_backlog_messages"), None, "no answer yet");
        let sent =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
                as u64
                - 30_000;
        let backlog =
            Backlog { backlog_count: 12, backlog_bytes: 4096, oldest_message_timestamp_ms: sent };
        m.queue_backlog("q1", Some(backlog));
        m.queue_backlog("q1", None);
        let text = scrape();
        assert_eq!(line(&text, "tailpdf_queue_backlog_messages"), Some(12.0));
        assert_eq!(line(&text, "tailpdf_queue_backlog_bytes"), Some(4096.0));
        let age = line(&text, "tailpdf_queue_oldest_message_age_seconds").unwrap();
        assert!((30.0..40.0).contains(&age), "{age}");
        m.queue_backlog(
            "q1",
            Some(Backlog { oldest_message_timestamp_ms: sent, ..Backlog::default() }),
        );
        let text = scrape();
        assert_eq!(line(&text, "tailpdf_queue_backlog_messages"), Some(0.0));
        assert_eq!(line(&text, "tailpdf_queue_oldest_message_age_seconds"), Some(0.0));
    }
}
