//! Small loopback servers the tests point documents and webhooks at.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{extract::State, http::StatusCode, routing::get, routing::post, Router};

/// A router served on a free loopback port until dropped.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Serves the router `app(base)` builds, given the base URL it will be served at.
    pub async fn start(app: impl FnOnce(&str) -> Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = app(&base);
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, task }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An image whose first request is held until the test is over and whose later ones are
/// answered at once: a render that is reliably still running when something is killed.
pub struct HeldImage {
    pub url: String,
    hits: Arc<AtomicUsize>,
    _server: Served,
}

impl HeldImage {
    pub async fn start() -> Self {
        async fn image(
            State(hits): State<Arc<AtomicUsize>>,
        ) -> ([(&'static str, &'static str); 1], &'static str) {
            if hits.fetch_add(1, Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
            (
                [("content-type", "image/svg+xml")],
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><rect width="40" height="40" fill="teal"/></svg>"#,
            )
        }
        let hits = Arc::new(AtomicUsize::new(0));
        let state = hits.clone();
        let server =
            Served::start(|_| Router::new().route("/logo.svg", get(image)).with_state(state)).await;
        Self { url: format!("{}/logo.svg", server.base), hits, _server: server }
    }

    /// Requests so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// How a [`ScriptedReceiver`] answers one delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Never answers (the sender's deadline runs out).
    Hang,
}

/// A webhook receiver that answers deliveries as scripted (then 200), recording each with the
/// answer it got.
pub struct ScriptedReceiver {
    pub url: String,
    log: Arc<Mutex<Vec<(String, Answer)>>>,
    _server: Served,
}

#[derive(Clone)]
struct Script {
    answers: Arc<Mutex<Vec<Answer>>>,
    log: Arc<Mutex<Vec<(String, Answer)>>>,
}

impl ScriptedReceiver {
    pub async fn start(script: &[Answer]) -> Self {
        async fn hook(State(s): State<Script>, headers: axum::http::HeaderMap) -> StatusCode {
            let answer = {
                let mut answers = s.answers.lock().unwrap();
                if answers.is_empty() {
                    Answer::Status(200)
                } else {
                    answers.remove(0)
                }
            };
            let id = headers.get("webhook-id").map_or("", |v| v.to_str().unwrap()).to_owned();
            s.log.lock().unwrap().push((id, answer));
            match answer {
                Answer::Status(code) => StatusCode::from_u16(code).unwrap(),
                Answer::Hang => {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    StatusCode::OK
                }
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let script = Script { answers: Arc::new(Mutex::new(script.to_vec())), log: log.clone() };
        let server =
            Served::start(|_| Router::new().route("/hook", post(hook)).with_state(script)).await;
        Self { url: format!("{}/hook", server.base), log, _server: server }
    }

    /// Every delivery so far: its `webhook-id` and the answer it got.
    pub fn deliveries(&self) -> Vec<(String, Answer)> {
        self.log.lock().unwrap().clone()
    }

    /// How many times one `webhook-id` was accepted (2xx) more than once: duplicates a
    /// receiver that de-duplicates by id would have to drop.
    pub fn accepted_duplicates(&self) -> usize {
        let accepted: Vec<String> = self
            .deliveries()
            .into_iter()
            .filter(|(_, a)| matches!(a, Answer::Status(200..=299)))
            .map(|(id, _)| id)
            .collect();
        let mut unique = accepted.clone();
        unique.sort();
        unique.dedup();
        accepted.len() - unique.len()
    }
}

/// A TCP proxy in front of `target` that holds its first connection (reads it, never answers)
/// and pipes every later one through: an upload that is reliably still under way when its
/// renderer is killed. A presigned URL made for the proxy's address verifies at the target,
/// which checks the signature against the Host the client sent.
pub struct HoldingProxy {
    pub addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HoldingProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                tokio::spawn(async move {
                    if first {
                        let mut sink = Vec::new();
                        let _ = tokio::io::AsyncReadExt::read_to_end(&mut inbound, &mut sink).await;
                        return;
                    }
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { addr, connections, task }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HoldingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
