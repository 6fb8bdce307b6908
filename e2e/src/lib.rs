//! Test support for the whole stack, used by `tests/`:
//!
//! - [`process`]: a server started as a child process in its own process group, stopped
//!   (group and all) when dropped;
//! - [`stack`]: the real parts — s3s-fs, the renderer binary, the built Worker under
//!   `wrangler dev --local` — and an in-process webhook receiver;
//! - [`contract`]: `openapi.yaml`, against which real responses and webhooks are checked;
//! - [`client`]: the public API called as a client does, checked against the contract;
//! - [`container`]: the renderer's image under podman (scripts/image.sh);
//! - [`fonts`]: a stand-in of the Google Fonts css2 API;
//! - [`pdf`]: poppler's tools on PDF bytes;
//! - [`queues`]: a stand-in of Cloudflare Queues' HTTP pull API;
//! - [`servers`]: an image held mid-render, a webhook receiver that answers as scripted.
//!
//! The renderer's own tests use [`process`], [`pdf`] and [`queues`] too.
//!
//! A panic is how a test fails, so this crate unwraps freely.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod client;
pub mod container;
pub mod contract;
pub mod fonts;
pub mod pdf;
pub mod process;
pub mod queues;
pub mod servers;
pub mod stack;

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A one-card Tailwind invoice numbered `n`, `note` under its title: the document of the
/// load and scale tests, distinct per job.
pub fn small_invoice(n: usize, note: &str) -> String {
    format!(
        "<div class=\"p-8\"><h1 class=\"text-2xl font-bold\">Invoice {n}</h1>\
         <p class=\"text-gray-600\">{note}</p></div>"
    )
}

/// A port nobody listens on right now.
///
/// Chosen below the kernel's ephemeral range (32768–60999 by default), where every `bind(0)`
/// of the stack's own processes lands (workerd's and wrangler's inner sockets, Chromium's), so
/// that none of them can take a port between our choosing it and our server binding it; and
/// never the same twice in one test process, whose tests start their stacks at once.
pub fn free_port() -> u16 {
    use std::hash::BuildHasher;
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let random = std::collections::hash_map::RandomState::new();
    for attempt in 0u32.. {
        let port = 20_000 + (random.hash_one((attempt, std::process::id())) % 12_000) as u16;
        let free = |host: &str| std::net::TcpListener::bind((host, port)).is_ok();
        if !given.contains(&port) && free("127.0.0.1") && free("0.0.0.0") {
            given.insert(port);
            return port;
        }
    }
    unreachable!("a free port among 12,000")
}

/// The `p` quantile (0 to 1) of `samples`, nearest rank; zero when there are none.
pub fn percentile(samples: &[std::time::Duration], p: f64) -> std::time::Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(((sorted.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or_default()
}

/// Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
