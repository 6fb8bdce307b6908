//! The tailpdf edge: the public API as a Cloudflare Worker (Rust compiled to wasm).
//!
//! - [`routes`]: which endpoint a request is for (404 and 405 decided there), and its body
//!   limit; [`queue_routes`]: which consumer a queue's delivery is for;
//! - [`admission`]: what every client request goes through first (API key, requests per
//!   minute, `Idempotency-Key`), below both of:
//! - [`jobs`]: `POST /pdf`, `GET /jobs/{id}` and a job's spec for the renderer;
//! - [`batches`]: `POST /pdf/batch` and `GET /batches/{id}`, and batch progress;
//! - [`events`]: the renderer's events, moving any job (single or a batch's document) forward;
//! - [`signed_calls`]: the signed calls between the edge, its renderers and the operator;
//! - [`renderers`]: which of several renderers (`RENDERER_URL`) a call goes to;
//! - [`containers`]: Containers mode, the renderers as container instances beside the Worker
//!   (their pool's addresses, starting one and waiting for it, when one sleeps);
//! - [`store`]: the records, every key's name, and the traits over KV and Queues;
//! - [`consumers`]: the queue consumers (push-mode render jobs and batch groups, webhook
//!   deliveries);
//! - [`delivery`]: webhook requests, retries and the dead-letter decision;
//! - [`dead_letters`]: dead-lettered webhooks kept, listed and replayed;
//! - [`limits`]: per-account requests per minute and jobs in flight (429), batch progress;
//! - [`access_log`]: the one structured line logged per request;
//! - [`error`]: the edge's one error type, which becomes the API's error body only at the
//!   HTTP boundary;
//! - [`sync_render`]: what the renderer's answer to a sync render means for the client;
//! - [`config`]: wrangler vars and secrets.
//!
//! - [`idempotency`]: `Idempotency-Key`s, kept by each account's object;
//! - [`job_object`]: each job's keys kept by its own object (a batch's documents' by the
//!   batch's), its one writer.
//!
//! All of it is plain Rust, tested natively; the Worker glue in `worker_glue`, the bindings as
//! the traits above (`bindings`), and the Durable Objects that hold each account's counters
//! (`limiter_object`), each job's keys (`job_object_class`) and each renderer container
//! instance (`container_class`) exist only on wasm32 and stay thin.

pub mod access_log;
#[cfg(test)]
mod across_locations;
pub mod admission;
pub mod batches;
#[cfg(target_arch = "wasm32")]
mod bindings;
pub mod config;
pub mod consumers;
#[cfg(target_arch = "wasm32")]
mod container_class;
pub mod containers;
#[cfg(test)]
mod costs;
pub mod dead_letters;
pub mod delivery;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod job_object;
#[cfg(target_arch = "wasm32")]
mod job_object_class;
pub mod jobs;
#[cfg(target_arch = "wasm32")]
mod limiter_object;
pub mod limits;
pub mod queue_routes;
pub mod renderers;
pub mod routes;
pub mod signed_calls;
pub mod store;
pub mod sync_render;
#[cfg(target_arch = "wasm32")]
mod worker_glue;
