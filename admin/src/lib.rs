//! `tailpdf-admin`: API keys, webhook secrets and account limits, without hand-written KV JSON.
//!
//! - [`accounts`]: what each command does to the `API_KEYS` namespace (plain logic over a
//!   [`kv::KeyStore`], tested in memory);
//! - [`kv`]: the namespace through `wrangler kv key …`, local (`wrangler dev`'s) or remote;
//! - [`edge`]: the edge's operator endpoints (dead-lettered webhooks), signed with its
//!   `ADMIN_SECRET`.
//!
//! The records are the Worker's own types (`tailpdf_edge::store::Account`), so what this
//! writes is what the Worker reads.

pub mod accounts;
pub mod edge;
pub mod kv;

/// Everything that can go wrong, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Wrangler(String),
    #[error("the edge: {0}")]
    Edge(String),
    #[error("no API key {0}: nothing was changed")]
    NoSuchKey(String),
    #[error(
        "no account {0:?}: create a key for it first (`tailpdf-admin key create --account {0}`)"
    )]
    NoSuchAccount(String),
    #[error("an API key with this value exists already (account {0:?})")]
    KeyExists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the record at {key} is not what the Worker reads: {error}")]
    Corrupt { key: String, error: String },
}
