//! The whole stack on loopback, as `make dev` runs it but on free ports and in a temporary
//! directory: s3s-fs (bucket `pdfs`), the renderer binary (push mode, or pull mode from the
//! Queues pull stand-in), the built Worker under `wrangler dev --local`, and a webhook
//! receiver.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use axum::{extract::State, http::StatusCode, routing::post, Router};
use reqwest::header::HeaderMap;
use rusty_s3::{Bucket as S3Bucket, Credentials, S3Action, UrlStyle};
use serde_json::{json, Value};
use tailpdf_shared::signing::hash_api_key;

use crate::{
    container::podman,
    free_port,
    process::Process,
    queues::{self, PullQueue},
    root,
    servers::Served,
};

pub const API_KEY: &str = "e2e-api-key";
pub const ACCOUNT: &str = "e2e";
pub const WEBHOOK_SECRET: &str = "e2e-webhook-secret";
pub const INTERNAL_SECRET: &str = "e2e-internal-secret";
const ACCESS_KEY: &str = "dev-access-key";
/// A fonts API on loopback that refuses at once (port 9, discard, is never served here).
const REFUSING_FONTS_API: &str = "http://127.0.0.1:9";
const SECRET_KEY: &str = "dev-secret-key";

/// What a test may change about the stack.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `JOB_TTL_DONE_SECS` of the edge.
    pub job_ttl_done_secs: u64,
    /// The renderer's `--fonts-api-base`; by default a port that refuses at once.
    pub fonts_api_base: Option<String>,
    /// Pull mode: the Worker's `render-jobs` messages go to the Queues pull stand-in (see
    /// [`queues`](crate::queues)), which the renderer pulls from. Sync renders have no
    /// renderer to reach then.
    pub pull: bool,
    /// Run the renderer from this container image (podman, host network, read-only root)
    /// instead of the binary.
    pub renderer_image: Option<String>,
    /// Run the release build of the renderer (`cargo build --release`), as benchmarks do.
    pub release: bool,
    /// The renderer's `--tabs`.
    pub tabs: usize,
    /// API keys of accounts besides the e2e one: (key, account), each with its own webhook
    /// secret.
    pub accounts: Vec<(String, String)>,
    /// Renderers: in pull mode all pull from the one queue; in push mode the Worker's
    /// `RENDERER_URL` lists them all.
    pub renderers: usize,
    /// Variables every renderer gets besides the stack's (`TAILPDF_*`).
    pub renderer_env: Vec<(String, String)>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            job_ttl_done_secs: 3600,
            fonts_api_base: None,
            pull: false,
            renderer_image: None,
            release: false,
            tabs: 2,
            accounts: Vec::new(),
            renderers: 1,
            renderer_env: Vec::new(),
        }
    }
}

pub struct Stack {
    pub edge: Edge,
    pub renderer: Renderer,
    /// The renderers beyond the first (`Settings::renderers`).
    pub others: Vec<Renderer>,
    pub bucket: Bucket,
    pub receiver: Receiver,
    /// The queue the renderer pulls from, in pull mode.
    pub queue: Option<PullQueue>,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start(settings: Settings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (edge_port, renderer_port) = (free_port(), free_port());
        let edge_url = format!("http://127.0.0.1:{edge_port}");
        let renderer_url = format!("http://127.0.0.1:{renderer_port}");
        let receiver = Receiver::start(0).await;
        let mut bucket = Bucket::start(dir.path());
        let fonts = settings.fonts_api_base.clone().unwrap_or_else(|| REFUSING_FONTS_API.into());
        let queue =
            if settings.pull { Some(PullQueue::start(Some(INTERNAL_SECRET)).await) } else { None };
        let pull_from = queue.as_ref().map(|q| q.api_base.clone());
        let mut renderer = Renderer::start(
            dir.path(),
            renderer_port,
            &edge_url,
            &fonts,
            pull_from.clone(),
            &settings,
        );
        let mut others: Vec<Renderer> = (1..settings.renderers.max(1))
            .map(|i| {
                let home = dir.path().join(format!("renderer-{i}"));
                std::fs::create_dir_all(&home).unwrap();
                Renderer::start(&home, free_port(), &edge_url, &fonts, pull_from.clone(), &settings)
            })
            .collect();
        let urls: Vec<String> =
            std::iter::once(renderer_url).chain(others.iter().map(|r| r.url.clone())).collect();
        let jobs_go_to = queue.as_ref().map_or(urls.join(","), |q| q.ingest.clone());
        let mut options = EdgeOptions::new(&jobs_go_to)
            .var("JOB_TTL_DONE_SECS", settings.job_ttl_done_secs.to_string());
        for (key, account) in &settings.accounts {
            options = options.account(key, account, Some(&format!("{account}-webhook-secret")));
        }
        let mut edge = Edge::spawn(dir.path(), edge_port, &options);
        bucket.wait_ready().await;
        renderer.wait_ready().await;
        for other in &mut others {
            other.wait_ready().await;
        }
        edge.wait_ready().await;
        Self { edge, renderer, others, bucket, receiver, queue, dir }
    }

    /// The body of an async A4 job of `content`, PUT to `upload_url`, its webhook to the
    /// stack's receiver.
    pub fn async_job(&self, content: &str, upload_url: &str) -> Value {
        json!({
            "content": content,
            "async": true,
            "upload_url": upload_url,
            "webhook_url": self.receiver.url,
            "pdfOptions": {"format": "A4", "printBackground": true},
        })
    }
}

// ------------------------------------------------------------------ bucket ----

/// s3s-fs with credentials, so that it checks SigV4 signatures; bucket `pdfs`.
pub struct Bucket {
    pub endpoint: String,
    root: PathBuf,
    port: u16,
    log: PathBuf,
    process: Option<Process>,
}

impl Bucket {
    fn start(dir: &Path) -> Self {
        let root = dir.join("s3");
        std::fs::create_dir_all(root.join("pdfs")).unwrap();
        let port = free_port();
        let mut bucket = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            root,
            port,
            log: dir.join("s3s-fs.log"),
            process: None,
        };
        bucket.spawn();
        bucket
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(cargo_bin("s3s-fs"));
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root);
        self.process = Some(Process::spawn("s3s-fs", cmd, &self.log));
    }

    async fn wait_ready(&mut self) {
        let url = format!("{}/", self.endpoint);
        let process = self.process.as_mut().unwrap();
        process.wait_until(Duration::from_secs(20), async || answers(&url).await).await;
    }

    /// The storage goes down (SIGKILL): uploads find nobody listening.
    pub fn stop(&mut self) {
        self.process.take().unwrap().kill_hard();
    }

    /// Back on the same port with the same objects.
    pub async fn start_again(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }

    /// A presigned PUT for `pdfs/{key}`, signed `signed_secs_ago` seconds ago and valid for
    /// `expires`, with the content type signed as the seed's examples do.
    pub fn presign(
        &self,
        key: &str,
        secret: &str,
        signed_secs_ago: i64,
        expires: Duration,
    ) -> String {
        presign(&self.endpoint, key, secret, signed_secs_ago, expires)
    }

    /// A valid URL for an hour, to the bucket through `endpoint` (a proxy in front of it).
    pub fn upload_url_via(&self, endpoint: &str, key: &str) -> String {
        dev_upload_url(endpoint, key)
    }

    /// The bucket's address.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// A valid URL for an hour.
    pub fn upload_url(&self, key: &str) -> String {
        self.presign(key, SECRET_KEY, 0, Duration::from_secs(3600))
    }

    /// Signed with the wrong secret: the server answers 403.
    pub fn forbidden_url(&self, key: &str) -> String {
        self.presign(key, "not-the-secret-key", 0, Duration::from_secs(3600))
    }

    /// Signed two hours ago, valid for one: expired, 403.
    pub fn expired_url(&self, key: &str) -> String {
        self.presign(key, SECRET_KEY, 7200, Duration::from_secs(3600))
    }

    pub fn object(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.root.join("pdfs").join(key)).ok()
    }

    /// Every object in the bucket (s3s-fs keeps each as a file under the bucket's folder).
    pub fn objects(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        let pdfs = self.root.join("pdfs");
        walk(&pdfs, &pdfs, &mut out);
        out.sort();
        out
    }
}

/// A presigned PUT of `pdfs/{key}` at `endpoint`, with the dev credentials (those of
/// `make dev` and docker/compose.yaml too), valid for an hour.
pub fn dev_upload_url(endpoint: &str, key: &str) -> String {
    presign(endpoint, key, SECRET_KEY, 0, Duration::from_secs(3600))
}

fn presign(
    endpoint: &str,
    key: &str,
    secret: &str,
    signed_secs_ago: i64,
    expires: Duration,
) -> String {
    let bucket =
        S3Bucket::new(endpoint.parse().unwrap(), UrlStyle::Path, "pdfs", "us-east-1").unwrap();
    let credentials = Credentials::new(ACCESS_KEY, secret);
    let mut action = bucket.put_object(Some(&credentials), key);
    action.headers_mut().insert("content-type", "application/pdf");
    let at = jiff::Timestamp::from_second(crate::now() - signed_secs_ago).unwrap();
    action.sign_with_time(expires, &at).to_string()
}

// ---------------------------------------------------------------- renderer ----

/// `tailpdf-renderer serve` in push mode, as `make dev` runs it, or in pull mode.
pub struct Renderer {
    pub url: String,
    port: u16,
    edge_url: String,
    fonts_api_base: String,
    /// The Queues API base it pulls from (pull mode).
    pull_from: Option<String>,
    /// The container image it runs from, if not the binary.
    image: Option<String>,
    release: bool,
    tabs: usize,
    env: Vec<(String, String)>,
    dir: PathBuf,
    process: Option<Process>,
}

impl Renderer {
    fn start(
        dir: &Path,
        port: u16,
        edge_url: &str,
        fonts_api_base: &str,
        pull_from: Option<String>,
        settings: &Settings,
    ) -> Self {
        let mut renderer = Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            edge_url: edge_url.to_owned(),
            fonts_api_base: fonts_api_base.to_owned(),
            pull_from,
            image: settings.renderer_image.clone(),
            release: settings.release,
            tabs: settings.tabs,
            env: settings.renderer_env.clone(),
            dir: dir.to_owned(),
            process: None,
        };
        renderer.spawn();
        renderer
    }

    /// The container's name, when it runs from an image.
    pub fn container(&self) -> Option<String> {
        self.image.as_ref().map(|_| format!("tailpdf-e2e-renderer-{}", self.port))
    }

    fn spawn(&mut self) {
        let mut cmd = match (&self.image, self.container()) {
            (Some(image), Some(name)) => {
                remove_container(&name);
                // Locked down as docker/README.md recommends: read-only root (podman mounts
                // tmpfs on /tmp, where Chromium's profile goes), every capability dropped but
                // SYS_CHROOT (Chromium's sandbox chroots in its namespace), no privilege
                // escalation; a volume for the font cache (as compose.yaml mounts one); the
                // host's loopback.
                let mut cmd = podman();
                cmd.args(["run", "--name", &name, "--network", "host", "--read-only"])
                    .args(["--cap-drop", "ALL", "--cap-add", "SYS_CHROOT"])
                    .args(["--security-opt", "no-new-privileges"])
                    .args(["-v", &format!("{name}-fonts:/var/cache/tailpdf/fonts")])
                    .args([
                        "-e",
                        "TAILPDF_LISTEN",
                        "-e",
                        "TAILPDF_INTERNAL_SECRET",
                        "-e",
                        "TAILPDF_LOG",
                    ])
                    .arg(image);
                cmd
            }
            _ if self.release => Command::new(renderer_release_bin()),
            _ => Command::new(renderer_bin()),
        };
        cmd.args(["--log-format", "json", "serve"])
            .args(["--edge-url", &self.edge_url, "--allow-loopback"])
            .args(["--tabs", &self.tabs.to_string()])
            // Nothing here may reach the internet: a local fonts API, or one that refuses.
            .args(["--fonts-api-base", &self.fonts_api_base])
            // By its variable, as platforms configure it (the image's healthcheck reads it).
            .env("TAILPDF_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("TAILPDF_INTERNAL_SECRET", INTERNAL_SECRET)
            .env("TAILPDF_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        if self.image.is_none() {
            cmd.arg("--font-cache-dir").arg(self.dir.join("fonts"));
        }
        if let Some(api) = &self.pull_from {
            cmd.args(["--pull", "--cf-api-base", api])
                .args(["--cf-account-id", queues::ACCOUNT_ID, "--cf-queue-id", queues::QUEUE_ID])
                .env("TAILPDF_CF_API_TOKEN", queues::API_TOKEN);
        }
        self.process = Some(Process::spawn("the renderer", cmd, &self.dir.join("renderer.log")));
    }

    pub async fn wait_ready(&mut self) {
        let url = format!("{}/readyz", self.url);
        let process = self.process.as_mut().unwrap();
        process.wait_until(Duration::from_secs(60), async || ok(&url).await).await;
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().unwrap().pid()
    }

    /// Its `/metrics` now.
    pub async fn metrics(&self) -> String {
        let response = client().get(format!("{}/metrics", self.url)).send().await.unwrap();
        response.text().await.unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("renderer.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crash would: no shutdown, no report to the edge.
    pub fn kill_hard(&mut self) {
        self.process.take().unwrap().kill_hard();
    }

    /// SIGTERM, as an orchestrator stops it: jobs in flight finish, the rest go back.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop();
        }
    }

    /// Its process id and those of its descendants (Chromium's), as /proc lists them now.
    pub fn pids(&self) -> Vec<u32> {
        let Some(root) = self.process.as_ref().map(Process::pid) else { return Vec::new() };
        crate::process::tree(root)
    }

    /// Starts it again on the same port, with the same settings.
    pub async fn restart(&mut self) {
        self.spawn();
        self.wait_ready().await;
    }
}

impl Drop for Renderer {
    fn drop(&mut self) {
        if let Some(name) = self.container() {
            remove_container(&name);
            let _ = podman().args(["volume", "rm", "-f", &format!("{name}-fonts")]).output();
        }
    }
}

/// Removes the container `name`, running or not, if there is one.
fn remove_container(name: &str) {
    let _ = podman().args(["rm", "-f", "-t", "0", name]).output();
}

// -------------------------------------------------------------------- edge ----

/// How the Worker is run: its wrangler vars and the API keys seeded into its KV.
#[derive(Clone, Debug)]
pub struct EdgeOptions {
    /// The address wrangler dev listens on (loopback unless a container must reach it).
    ip: String,
    vars: Vec<(String, String)>,
    /// (API key, account, webhook secret)
    accounts: Vec<(String, String, Option<String>)>,
    /// An account's own `limits`, in its KV record.
    limits: Vec<(String, Value)>,
}

impl EdgeOptions {
    /// `make dev`'s settings with short retry delays, and the e2e API key.
    pub fn new(renderer_url: &str) -> Self {
        let vars = [
            ("INTERNAL_SECRET", INTERNAL_SECRET),
            ("ALLOW_LOOPBACK", "true"),
            ("RENDERER_URL", renderer_url),
            ("RENDER_RETRY_DELAY_SECS", "1"),
            ("PUSH_CHECK_SECS", "2"),
            ("WEBHOOK_RETRY_DELAYS", "1,1,1"),
            ("WEBHOOK_TIMEOUT_SECS", "5"),
            ("SYNC_TIMEOUT_SECS", "60"),
            // The load tests and benchmarks measure the stack, not the limits of its accounts.
            ("RATE_LIMIT_REQUESTS_PER_MINUTE", "0"),
            ("RATE_LIMIT_JOBS_IN_FLIGHT", "0"),
        ];
        Self {
            ip: String::from("127.0.0.1"),
            vars: vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            accounts: vec![(API_KEY.into(), ACCOUNT.into(), Some(WEBHOOK_SECRET.into()))],
            limits: Vec::new(),
        }
    }

    /// Sets a wrangler var (replacing the default).
    #[must_use]
    pub fn var(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.into()));
        self
    }

    /// Listens on `ip` instead of 127.0.0.1: a host address of a container network.
    #[must_use]
    pub fn ip(mut self, ip: &str) -> Self {
        ip.clone_into(&mut self.ip);
        self
    }

    /// Another API key, for another account.
    #[must_use]
    pub fn account(mut self, api_key: &str, account: &str, webhook_secret: Option<&str>) -> Self {
        self.accounts.push((api_key.into(), account.into(), webhook_secret.map(Into::into)));
        self
    }

    /// Sets `account`'s own limits (its record's `limits`, e.g. `{"jobs_in_flight": 1}`).
    #[must_use]
    pub fn limits(mut self, account: &str, limits: Value) -> Self {
        self.limits.push((account.into(), limits));
        self
    }
}

/// The built Worker under `wrangler dev --local`, its KV state in a temporary folder.
pub struct Edge {
    pub url: String,
    process: Option<Process>,
    dir: PathBuf,
    port: u16,
    options: EdgeOptions,
}

impl Edge {
    /// Seeds the API keys, starts `wrangler dev` on `port`; [`Edge::wait_ready`] next.
    pub fn spawn(dir: &Path, port: u16, options: &EdgeOptions) -> Self {
        let worker = root().join("edge/build/worker/shim.mjs");
        assert!(worker.exists(), "the Worker is not built: run `make build-edge` (make test does)");
        assert_fresh(&worker, &["edge/src", "shared/src"], ("make build-edge", "make test"));
        let state = dir.join("wrangler");
        let mut seed = Vec::new();
        for (key, account, secret) in &options.accounts {
            let mut value = json!({"account": account, "webhook_secret": secret});
            if let Some((_, limits)) = options.limits.iter().find(|(a, _)| a == account) {
                value["limits"] = limits.clone();
            }
            let value = value.to_string();
            seed.push(json!({"key": format!("key:{}", hash_api_key(key)), "value": value}));
            seed.push(json!({"key": format!("account:{account}"), "value": value}));
        }
        let seed_file = dir.join("keys.json");
        std::fs::write(&seed_file, Value::Array(seed).to_string()).unwrap();
        let out = wrangler()
            .args(["kv", "bulk", "put", "--local", "--binding", "API_KEYS", "--persist-to"])
            .arg(&state)
            .arg(&seed_file)
            .output()
            .unwrap();
        assert!(out.status.success(), "seeding the API keys failed: {out:?}");

        let mut cmd = wrangler();
        cmd.args(["dev", "--local", "--ip", &options.ip, "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .args(["--show-interactive-dev-session=false", "--persist-to"])
            .arg(&state);
        for (name, value) in &options.vars {
            cmd.args(["--var", &format!("{name}:{value}")]);
        }
        let process = Process::spawn("wrangler dev", cmd, &dir.join("wrangler.log"));
        Self {
            url: format!("http://{}:{port}", options.ip),
            process: Some(process),
            dir: dir.to_owned(),
            port,
            options: options.clone(),
        }
    }

    pub async fn wait_ready(&mut self) {
        let url = format!("{}/", self.url);
        let process = self.process.as_mut().unwrap();
        process.wait_until(Duration::from_secs(90), async || answers(&url).await).await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("wrangler.log")).unwrap_or_default()
    }

    /// SIGKILLs wrangler dev (workerd and all) and starts it again on the same port with the
    /// same persisted state (KV, queues), as after a crash.
    pub async fn restart(&mut self) {
        self.process.take().unwrap().kill_hard();
        let again = Self::spawn(&self.dir, self.port, &self.options);
        self.process = again.process;
        self.wait_ready().await;
    }
}

fn wrangler() -> Command {
    let bin = root().join("node_modules/.bin");
    let mut cmd = Command::new(bin.join("wrangler"));
    cmd.current_dir(root())
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()))
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false");
    cmd
}

// ---------------------------------------------------------------- receiver ----

/// One webhook as it arrived.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Delivery {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

/// A real HTTP server for webhooks: answers 500 to the first `fail_first` deliveries, then 200.
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
    _server: Served,
}

#[derive(Clone)]
struct ReceiverState {
    received: Arc<Mutex<Vec<Delivery>>>,
    fail_first: Arc<Mutex<usize>>,
}

impl Receiver {
    pub async fn start(fail_first: usize) -> Self {
        async fn hook(
            State(state): State<ReceiverState>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let delivery = Delivery { headers, body: body.to_vec(), at: Instant::now() };
            state.received.lock().unwrap().push(delivery);
            let mut fail = state.fail_first.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            StatusCode::OK
        }
        let received = Arc::default();
        let state = ReceiverState {
            received: Arc::clone(&received),
            fail_first: Arc::new(fail_first.into()),
        };
        let server =
            Served::start(|_| Router::new().route("/hook", post(hook)).with_state(state)).await;
        Self { url: format!("{}/hook", server.base), received, _server: server }
    }

    /// Every delivery so far, in arrival order.
    pub fn all(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// The deliveries for one job, in arrival order.
    pub fn for_job(&self, job_id: &str) -> Vec<Delivery> {
        self.all().into_iter().filter(|d| d.json()["job_id"] == job_id).collect()
    }
}

// ------------------------------------------------------------------ helpers ----

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap()
}

/// Anything answers at `url` (the status does not matter).
async fn answers(url: &str) -> bool {
    client().get(url).send().await.is_ok()
}

/// `url` answers with a 2xx.
pub async fn ok(url: &str) -> bool {
    client().get(url).send().await.is_ok_and(|r| r.status().is_success())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap();
    let bin = home.join("bin").join(name);
    assert!(bin.exists(), "{} is missing: `make setup` installs it", bin.display());
    bin
}

/// The renderer binary `cargo test --workspace` builds alongside this crate's tests.
pub fn renderer_bin() -> PathBuf {
    built_renderer("debug", ("cargo build -p tailpdf-renderer", "make test"))
}

/// The release build of the renderer, for benchmarks (`make bench-stack` builds it).
pub fn renderer_release_bin() -> PathBuf {
    built_renderer("release", ("cargo build --release -p tailpdf-renderer", "make bench-stack"))
}

/// The renderer binary of a cargo profile, never older than its sources; `how` builds it, and
/// which make target runs that.
fn built_renderer(profile: &str, how: (&str, &str)) -> PathBuf {
    let bin = target_dir().join(profile).join("tailpdf-renderer");
    assert!(bin.exists(), "{} is missing: run `{}` ({} does)", bin.display(), how.0, how.1);
    assert_fresh(&bin, &["renderer/src", "renderer/assets", "shared/src"], how);
    bin
}

/// Panics if a source under `dirs` is newer than `built`: testing an old build proves nothing.
fn assert_fresh(built: &Path, dirs: &[&str], (how, by): (&str, &str)) {
    fn newest(path: &Path) -> SystemTime {
        let meta = std::fs::metadata(path).unwrap();
        if meta.is_dir() {
            std::fs::read_dir(path)
                .unwrap()
                .flatten()
                .map(|e| newest(&e.path()))
                .max()
                .unwrap_or(SystemTime::UNIX_EPOCH)
        } else {
            meta.modified().unwrap()
        }
    }
    let built_at = std::fs::metadata(built).unwrap().modified().unwrap();
    for dir in dirs {
        let source = newest(&root().join(dir));
        assert!(
            source <= built_at,
            "{} is older than {dir}: run `{how}` ({by} does)",
            built.display()
        );
    }
}

/// Polls `check` every 200 ms until it holds; panics after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
