//! The tailpdf renderer: Chromium turns HTML + Tailwind into PDFs.
//!
//! - [`engine`]: the render pipeline (one Chromium, a pool of tabs, deadlines, restarts).
//! - [`tailwind`]: CSS for the classes used, from the real Tailwind v4 compiler in a page.
//! - [`fonts`]: Google Fonts css2 specs resolved and cached on disk.
//! - [`net`]: the SSRF-guarded fetcher that loads everything the page asks for.
//! - [`document`], [`pdf`]: the HTML that goes in and the print parameters.
//! - [`service`]: `tailpdf-renderer serve`, the HTTP API, job runs, uploads, pull mode.
//! - [`config`], [`error`]: settings (flags + `TAILPDF_*` env) and the error type.

mod cdp;
pub mod config;
pub mod document;
pub mod engine;
pub mod error;
pub mod fonts;
pub mod net;
pub mod pdf;
pub mod service;
pub mod tailwind;
