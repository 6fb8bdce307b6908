//! Prometheus metrics, in the text exposition format, without a registry crate: a few
//! counters, gauges and two histograms.

use std::{
    fmt::Write,
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::Duration,
};

use crate::engine::EngineStats;

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

const BUCKETS: [f64; 12] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ =
                writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", bucket.load(Ordering::Relaxed));
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

#[derive(Default)]
pub struct Metrics {
    pub jobs_completed: Counter,
    pub jobs_failed: Counter,
    pub jobs_retried: Counter,
    pub jobs_in_flight: Gauge,
    pub rejected_full: Counter,
    pub pulls: Counter,
    pub messages_pulled: Counter,
    pub acks: Counter,
    pub retries: Counter,
    pub render_seconds: Histogram,
    pub upload_seconds: Histogram,
    /// A job's whole stay here: spec, events, render and upload.
    pub job_seconds: Histogram,
}

impl Metrics {
    /// The text exposition; `backlog` is the number of requests waiting for a tab, `ready` the
    /// shared tabs free and the spare browser contexts made.
    pub fn render(&self, engine: EngineStats, backlog: usize, ready: (usize, usize)) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, series: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (labels, v) in series {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        counter(
            "tailpdf_renders_total",
            "Renders by outcome (sync renders and jobs' renders, counted by the engine).",
            &[("{outcome=\"ok\"}", engine.renders), ("{outcome=\"failed\"}", engine.failures)],
        );
        counter(
            "tailpdf_jobs_total",
            "Jobs by how they ended here.",
            &[
                ("{outcome=\"completed\"}", self.jobs_completed.get()),
                ("{outcome=\"failed\"}", self.jobs_failed.get()),
                ("{outcome=\"retry\"}", self.jobs_retried.get()),
            ],
        );
        counter(
            "tailpdf_rejected_total",
            "Requests answered 503 because every tab and queue place was taken.",
            &[("", self.rejected_full.get())],
        );
        counter(
            "tailpdf_browser_restarts_total",
            "Chromium starts after the first (restarts and crash recoveries).",
            &[("", engine.browser_starts.saturating_sub(1))],
        );
        counter(
            "tailpdf_tabs_replaced_total",
            "Tabs closed and replaced (deadline, error).",
            &[("", engine.tabs_replaced)],
        );
        counter(
            "tailpdf_isolated_renders_total",
            "Renders in a browser context of their own (documents that run scripts).",
            &[("", engine.isolated_renders)],
        );
        counter(
            "tailpdf_escalations_total",
            "Documents rendered again in a fresh context once their DOM showed they need scripts.",
            &[("", engine.escalations)],
        );
        counter(
            "tailpdf_limit_failures_total",
            "Renders that crossed a limit (requests, bytes, pages, classes, CSS, compiler time).",
            &[("", engine.limit_failures)],
        );
        counter(
            "tailpdf_queue_pulls_total",
            "Pull requests to the queue.",
            &[("", self.pulls.get())],
        );
        counter(
            "tailpdf_queue_messages_total",
            "Messages pulled from the queue.",
            &[("", self.messages_pulled.get())],
        );
        counter("tailpdf_queue_acks_total", "Messages acknowledged.", &[("", self.acks.get())]);
        counter(
            "tailpdf_queue_retries_total",
            "Messages handed back for redelivery.",
            &[("", self.retries.get())],
        );
        let _ = writeln!(out, "# HELP tailpdf_jobs_in_flight Jobs being run now.\n# TYPE tailpdf_jobs_in_flight gauge\ntailpdf_jobs_in_flight {}", self.jobs_in_flight.get());
        let _ = writeln!(out, "# HELP tailpdf_backlog Requests waiting for a tab.\n# TYPE tailpdf_backlog gauge\ntailpdf_backlog {backlog}");
        let _ = writeln!(out, "# HELP tailpdf_tabs_idle Shared tabs open and free.\n# TYPE tailpdf_tabs_idle gauge\ntailpdf_tabs_idle {}", ready.0);
        let _ = writeln!(out, "# HELP tailpdf_spare_contexts Browser contexts made ahead for documents that run scripts.\n# TYPE tailpdf_spare_contexts gauge\ntailpdf_spare_contexts {}", ready.1);
        self.render_seconds.write(
            &mut out,
            "tailpdf_render_duration_seconds",
            "Time to render a PDF.",
        );
        self.upload_seconds.write(
            &mut out,
            "tailpdf_upload_duration_seconds",
            "Time to upload a PDF, retries included.",
        );
        self.job_seconds.write(
            &mut out,
            "tailpdf_job_duration_seconds",
            "Time a job spends in this renderer, from its arrival to its end: spec, events, \
             render and upload.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_gauges_and_cumulative_buckets() {
        let m = Metrics::default();
        m.render_seconds.observe(Duration::from_millis(40));
        m.render_seconds.observe(Duration::from_millis(700));
        let stats = EngineStats {
            renders: 2,
            failures: 1,
            browser_starts: 3,
            escalations: 4,
            ..EngineStats::default()
        };
        let text = m.render(stats, 2, (1, 2));
        assert!(text.contains("tailpdf_escalations_total 4"));
        assert!(text.contains("tailpdf_renders_total{outcome=\"ok\"} 2"));
        assert!(text.contains("tailpdf_renders_total{outcome=\"failed\"} 1"));
        assert!(text.contains("tailpdf_browser_restarts_total 2"));
        assert!(text.contains("tailpdf_backlog 2"));
        assert!(text.contains("tailpdf_tabs_idle 1"));
        assert!(text.contains("tailpdf_spare_contexts 2"));
        assert!(text.contains("tailpdf_render_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(text.contains("tailpdf_render_duration_seconds_bucket{le=\"1\"} 2"));
        assert!(text.contains("tailpdf_render_duration_seconds_count 2"));
    }
}
