//! The tailpdf renderer: Chromium turns HTML + Tailwind into PDFs.
//!
//! - [`engine`]: the render pipeline: one Chromium, documents isolated from each other
//!   (shared tabs with scripts off, or a browser context each), Tailwind CSS, fonts, limits,
//!   deadlines and restarts;
//! - [`net`]: the SSRF-guarded fetcher that loads everything the page asks for, and uploads;
//! - [`service`]: `tailpdf-renderer serve`, the HTTP API, job runs, uploads, pull mode;
//! - [`config`], [`error`]: settings (flags + `TAILPDF_*` env) and the error types.
//!
//! Feature `testing` adds hooks for tests and the benchmark (a bare browser, the browser's
//! PID, CSS on demand); the service never needs them.

pub mod config;
pub mod engine;
pub mod error;
pub mod net;
pub mod service;

/// The commit measured, and whether the tree had changes on top of it: the heading of every
/// benchmark report (`tailpdf-bench`, `tailpdf-soak`).
#[cfg(feature = "testing")]
pub fn revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit =
        git(&["log", "-1", "--format=%h %cs"]).unwrap_or_else(|| "unknown revision".into());
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{commit} with uncommitted changes"),
        _ => commit,
    }
}
