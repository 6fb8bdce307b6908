//! The tailpdf renderer: Chromium turns HTML + Tailwind into PDFs.
//!
//! - [`engine`]: the render pipeline: one Chromium, documents isolated from each other
//!   (shared tabs with scripts off, or a browser context each), Tailwind CSS, fonts, limits,
//!   deadlines and restarts;
//! - [`postprocess`]: what is done to the printed PDF: metadata, PDF/A, encryption;
//! - [`net`]: the SSRF-guarded fetcher that loads everything the page asks for, and uploads;
//! - [`service`]: `tailpdf-renderer serve`, the HTTP API, job runs, uploads, pull mode;
//! - [`config`], [`error`]: settings (flags + `TAILPDF_*` env) and the error types.
//!
//! Feature `testing` adds hooks for tests and the benchmarks (a bare browser, the browser's
//! PID, CSS on demand, [`measure`]); the service never needs them.

pub mod config;
pub mod engine;
pub mod error;
pub mod net;
pub mod postprocess;
pub mod service;

/// What the benchmarks read of the machine (the commit, processes' CPU time).
#[cfg(feature = "testing")]
pub mod measure;
