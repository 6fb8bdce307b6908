//! `tailpdf-renderer serve` run in the test's own process, on a port of its own, with the
//! settings of the service tests.

use std::time::Duration;

use tailpdf_renderer::service::{self, ServeConfig};

/// The internal secret of the service tests.
pub(crate) const SECRET: &str = "test-internal-secret";

pub(crate) struct Renderer {
    pub(crate) base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _cache: tempfile::TempDir,
}

pub(crate) fn serve_config(
    edge: &str,
    f: impl FnOnce(&mut ServeConfig),
) -> (ServeConfig, tempfile::TempDir) {
    let cache = tempfile::tempdir().unwrap();
    let mut engine = super::engine_config("http://127.0.0.1:9/", cache.path());
    engine.allow_loopback = true; // the bucket and the receivers are on loopback
    let mut cfg = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        edge_url: edge.parse().unwrap(),
        internal_secret: SECRET.into(),
        queue_size: 2,
        grace_period: Duration::from_secs(30),
        upload_timeout: Duration::from_secs(10),
        upload_retry_budget: Duration::from_secs(20),
        event_retry_budget: Duration::from_secs(10),
        max_attempts: 3,
        pull: false,
        cf_api_base: "http://127.0.0.1:9/client/v4".parse().unwrap(),
        cf_account_id: None,
        cf_queue_id: None,
        cf_batch_queue_id: None,
        cf_api_token: None,
        pull_interval: Duration::from_millis(100),
        visibility_timeout: None,
        group_size: 20,
        engine,
    };
    f(&mut cfg);
    (cfg, cache)
}

pub(crate) async fn start_renderer(cfg: (ServeConfig, tempfile::TempDir)) -> Renderer {
    let (cfg, cache) = cfg;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service::run(cfg, listener, async move {
        let _ = rx.await;
    }));
    super::wait_ready(&base).await;
    Renderer { base, stop: Some(tx), task, _cache: cache }
}

impl Renderer {
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), self.task).await.unwrap().unwrap().unwrap();
    }
}
