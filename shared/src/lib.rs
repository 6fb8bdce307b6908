//! The tailpdf contract: everything the edge Worker and the renderer must agree on.
//!
//! Pure and free of I/O so that it builds for `wasm32-unknown-unknown` (the Worker) and natively
//! (the renderer, the tests). A rule lives here once; the edge and the renderer are adapters
//! around it.
//!
//! - [`request`]: `POST /pdf` bodies and their validation ([`request::parse_pdf_request`]);
//!   [`client_shapes`]: what TailPDF's real clients send, brought to that shape.
//! - [`batch`]: `POST /pdf/batch` bodies ([`batch::parse_batch_request`]), a tailpdf
//!   extension: many documents sharing fonts, config and pdfOptions, one job each.
//! - [`pdf_options`], [`fonts`], [`url_guard`]: the parts of a request with rules of their own;
//!   [`postprocess`]: password, metadata and PDF/A, applied after the print.
//! - [`job`]: job ids, records, the forward-only state machine and the public job JSON.
//! - [`webhook`]: `render.completed` / `render.failed` / `batch.completed` payloads and their
//!   headers.
//! - [`signing`]: `X-TailPDF-Signature`, Standard Webhooks v1 and the internal scheme.
//! - [`messages`]: queue messages and the internal edge ↔ renderer bodies.
//! - [`origin`]: the base URLs the edge and the renderer call each other at.
//! - [`error`]: the API's error type and its `{"error","message"}` body.

pub mod batch;
pub mod client_shapes;
pub mod error;
pub mod fonts;
pub mod id;
pub mod job;
pub mod limits;
pub mod messages;
mod number;
pub mod origin;
pub mod pdf_options;
pub mod postprocess;
pub mod request;
pub mod signing;
pub mod time;
pub mod trace;
pub mod url_guard;
pub mod webhook;

pub use error::{ApiError, ErrorBody, ErrorCode};
pub use id::JobId;
pub use job::{JobEvent, JobRecord, JobStatus, JobView, Transition};
pub use request::{parse_pdf_request, Delivery, RenderSpec, ValidPdfRequest};
pub use time::Timestamp;
pub use url_guard::UrlPolicy;
