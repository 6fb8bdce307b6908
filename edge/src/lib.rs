//! The tailpdf edge: the public API as a Cloudflare Worker (Rust compiled to wasm).
//!
//! - [`routes`]: which endpoint a request is for (404 and 405 decided there);
//! - [`api`]: what `POST /pdf`, `GET /jobs/{id}` and the internal endpoints do;
//! - [`batches`]: `POST /pdf/batch` and `GET /batches/{id}`, and batch progress;
//! - [`store`]: the KV layout and the traits over KV and Queues;
//! - [`consumers`]: the queue consumers (push-mode render jobs and batch groups, webhook
//!   deliveries);
//! - [`delivery`]: webhook requests, retries and the dead-letter decision;
//! - [`dead_letters`]: dead-lettered webhooks kept, listed and replayed;
//! - [`limits`]: per-account requests per minute and jobs in flight (429), batch progress;
//! - [`access_log`]: the one structured line logged per request;
//! - [`config`]: wrangler vars and secrets.
//!
//! - [`idempotency`]: `Idempotency-Key`s, kept by each account's object;
//! - [`job_object`]: each single job's keys kept by its own object, its one writer.
//!
//! All of it is plain Rust, tested natively; the Worker glue in `worker_glue`, the bindings as
//! the traits above (`bindings`), and the Durable Objects that hold each account's counters
//! (`limiter_object`) and each job's keys (`job_object_class`) exist only on wasm32 and stay
//! thin.

pub mod access_log;
#[cfg(test)]
mod across_locations;
pub mod api;
pub mod batches;
#[cfg(target_arch = "wasm32")]
mod bindings;
pub mod config;
pub mod consumers;
pub mod dead_letters;
pub mod delivery;
pub mod idempotency;
pub mod job_object;
#[cfg(target_arch = "wasm32")]
mod job_object_class;
#[cfg(target_arch = "wasm32")]
mod limiter_object;
pub mod limits;
pub mod routes;
pub mod store;
#[cfg(target_arch = "wasm32")]
mod worker_glue;
