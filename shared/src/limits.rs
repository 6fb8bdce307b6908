//! Limits of the public API and of the platform it runs on, in one place.

/// `content` at most 1 MB, TailPDF's limit (read generously: 1 MiB); over it is a 400.
pub const MAX_CONTENT_BYTES: usize = 1024 * 1024;
/// A `POST /pdf` body larger than this is refused (413) before it is parsed. It is far above
/// the largest valid request: JSON may escape every character of `content` as `\u0000` (6×),
/// and the templates and `config` come on top.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// `POST /pdf/batch`: at most this many `documents`, each a job of its own (its id made from
/// the batch's and its index: at most 32⁴). Cloudflare allows 1,000 KV operations per Worker
/// invocation: the edge writes one record for the whole batch and bounds the specs it stores
/// (under 400 operations for any accepted batch, see the edge's `batches` module).
pub const MAX_BATCH_DOCUMENTS: usize = 1000;
/// A `POST /pdf/batch` body larger than this is refused (413) before it is parsed. Workers
/// accept bodies up to 100 MB; the Worker holds the body and what it parses into at once
/// within its 128 MB, so the body stays well under that.
pub const MAX_BATCH_BODY_BYTES: usize = 64 * 1024 * 1024;
/// The `content` of every document of a batch, summed, at most this many bytes; over it the
/// batch is refused whole with 413 `payload_too_large` (each document may be within
/// [`MAX_CONTENT_BYTES`]: it is the batch as a whole that is too large, so split it).
pub const MAX_BATCH_CONTENT_BYTES: usize = 48 * 1024 * 1024;
/// The Tailwind `config` at most this many bytes as JSON.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;
/// At most this many entries in `fonts`.
pub const MAX_FONTS: usize = 10;
/// `headerTemplate` and `footerTemplate` each at most this many bytes.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// `upload_url` and `webhook_url` at most this many bytes (presigned URLs run to ~2 KB).
pub const MAX_URL_BYTES: usize = 8 * 1024;
/// `Idempotency-Key` at most this many characters.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
/// Nesting depth allowed in the Tailwind `config` object.
pub const MAX_CONFIG_DEPTH: usize = 16;

/// Internal signatures older or newer than this are refused.
pub const INTERNAL_SIGNATURE_WINDOW_SECS: i64 = 300;
/// Standard Webhooks receivers are told to refuse timestamps further off than this.
pub const WEBHOOK_TIMESTAMP_TOLERANCE_SECS: i64 = 300;

/// How long an open job's keys live in KV (a job stuck longer than this is gone).
pub const JOB_TTL_OPEN_SECS: u64 = 24 * 3600;
/// How long a finished job stays readable ("cached for 1 hour after completion or failure").
pub const JOB_TTL_DONE_SECS: u64 = 3600;
/// KV refuses an `expiration_ttl` below this.
pub const KV_MIN_TTL_SECS: u64 = 60;

/// Cloudflare Queues refuse messages over 128 KB.
pub const QUEUE_MESSAGE_MAX_BYTES: usize = 128 * 1000;
/// A render spec up to this size travels inside the render-jobs message; a larger one is
/// fetched by the renderer from `GET /internal/jobs/{id}/spec`.
pub const INLINE_SPEC_MAX_BYTES: usize = 64 * 1024;
