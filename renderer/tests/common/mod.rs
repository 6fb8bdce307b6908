//! Helpers of the renderer's integration tests: engine settings, a local server shaped like
//! the Google Fonts css2 API (serving Debian's Inter), and PDF inspection with poppler-utils.
#![allow(dead_code, clippy::unwrap_used)] // each test binary uses its own subset

pub(crate) mod s3;
pub(crate) mod serve;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    extract::{Path as UrlPath, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use tailpdf_renderer::config::EngineConfig;
use tailpdf_shared::fonts::{AxisValue, FontSpec};

/// Debian's Inter as variable TrueType (fonts-inter-variable).
const INTER_VF_DIR: &str = "/usr/share/fonts/truetype/inter-vf";
const WEIGHTS: [u32; 4] = [400, 500, 600, 700];

/// Static TrueType instances of Inter, the kind of file the css2 API serves (Chromium embeds
/// CFF and variable fonts as nameless Type 3 fonts, static TrueType under its own name). Made
/// once with Debian's fontTools and kept in cargo's test tmpdir.
pub(crate) fn inter_static_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("inter-static");
        std::fs::create_dir_all(&dir).unwrap();
        for (source, italic) in [("Inter-roman.var.ttf", false), ("Inter-italic.var.ttf", true)] {
            for weight in WEIGHTS {
                let out = dir.join(static_name(weight, italic));
                if out.exists() {
                    continue;
                }
                let tmp =
                    dir.join(format!(".{}.{}", static_name(weight, italic), std::process::id()));
                let status = Command::new("/usr/bin/python3")
                    .args(["-m", "fontTools.varLib.instancer", "--quiet", "--update-name-table"])
                    .arg(Path::new(INTER_VF_DIR).join(source))
                    .arg(format!("wght={weight}"))
                    .arg("-o")
                    .arg(&tmp)
                    .status()
                    .expect("python3-fonttools must be installed (scripts/setup.sh)");
                assert!(status.success(), "fontTools could not instance {source} at {weight}");
                std::fs::rename(&tmp, &out).unwrap();
            }
        }
        dir
    })
}

fn static_name(weight: u32, italic: bool) -> String {
    format!("Inter-{weight}{}.ttf", if italic { "i" } else { "" })
}

pub(crate) fn engine_config(fonts_api: &str, cache: &Path) -> EngineConfig {
    let mut cfg = EngineConfig::defaults();
    cfg.tabs = Some(2);
    cfg.render_timeout = Duration::from_secs(20);
    cfg.fonts_api_base = fonts_api.parse().unwrap();
    cfg.font_cache_dir = cache.to_path_buf();
    cfg.font_timeout = Duration::from_secs(5);
    cfg.fetch_timeout = Duration::from_secs(5);
    cfg
}

pub(crate) fn spec(json: serde_json::Value) -> tailpdf_shared::RenderSpec {
    let body = serde_json::to_vec(&json).unwrap();
    tailpdf_shared::parse_pdf_request(&body, tailpdf_shared::UrlPolicy::DEVELOPMENT).unwrap().spec
}

/// A css2-shaped font server: `Inter` and its alias `Interim` (a family no system has, so only
/// the web font can provide it) map to Debian's Inter files.
pub(crate) struct FontServer {
    pub(crate) base: String,
    pub(crate) requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct FontState {
    base: String,
    requests: Arc<AtomicUsize>,
    hang: bool,
}

impl FontServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(false).await
    }

    /// A server that accepts connections and never answers.
    pub(crate) async fn hanging() -> Self {
        Self::start_with(true).await
    }

    async fn start_with(hang: bool) -> Self {
        tokio::task::spawn_blocking(inter_static_dir).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let requests = Arc::new(AtomicUsize::new(0));
        let state = FontState { base: base.clone(), requests: requests.clone(), hang };
        let app = Router::new()
            .route("/css2", get(css2))
            .route("/s/inter/{file}", get(font_file))
            .with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { base, requests, task }
    }

    pub(crate) fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for FontServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(serde::Deserialize)]
struct Css2Query {
    family: String,
}

async fn css2(State(state): State<FontState>, Query(q): Query<Css2Query>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if state.hang {
        std::future::pending::<()>().await;
    }
    let Ok(spec) = FontSpec::parse(&q.family) else {
        return (StatusCode::BAD_REQUEST, "bad family").into_response();
    };
    if !matches!(spec.family(), "Inter" | "Interim") {
        return (StatusCode::BAD_REQUEST, "unknown family").into_response();
    }
    let ital = spec.axes().iter().position(|a| a == "ital");
    let wght = spec.axes().iter().position(|a| a == "wght");
    let mut styles: Vec<(bool, f64)> = spec
        .tuples()
        .iter()
        .map(|t| {
            let italic = ital.is_some_and(|i| t[i] == AxisValue::Single(1.0));
            let weight = wght.map_or(400.0, |i| match t[i] {
                AxisValue::Single(w) | AxisValue::Range(w, _) => w,
            });
            (italic, weight)
        })
        .collect();
    if styles.is_empty() {
        styles.push((false, 400.0));
    }
    let mut css = String::new();
    for (italic, weight) in styles {
        let weight = WEIGHTS
            .into_iter()
            .min_by_key(|w| (f64::from(*w) - weight).abs() as u32)
            .unwrap_or(400);
        let file = static_name(weight, italic);
        css.push_str(&format!(
            "/* latin */\n@font-face {{\n  font-family: '{}';\n  font-style: {};\n  font-weight: {};\n  font-display: block;\n  src: url({}/s/inter/{file}) format('truetype');\n}}\n",
            spec.family(),
            if italic { "italic" } else { "normal" },
            weight,
            state.base
        ));
    }
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response()
}

async fn font_file(State(state): State<FontState>, UrlPath(file): UrlPath<String>) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if file.contains('/') || file.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    match tokio::fs::read(inter_static_dir().join(&file)).await {
        Ok(bytes) => ([(header::CONTENT_TYPE, "font/ttf")], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// RGB of a pixel of page 1 rendered at `dpi`, (x, y) in pixels.
pub(crate) fn pixel(pdf: &[u8], dpi: u32, x: usize, y: usize) -> [u8; 3] {
    pixel_on(pdf, 1, dpi, x, y)
}

/// RGB of a pixel of `page` (from 1) rendered at `dpi`, (x, y) in pixels.
pub(crate) fn pixel_on(pdf: &[u8], page: u32, dpi: u32, x: usize, y: usize) -> [u8; 3] {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).unwrap();
    let page = page.to_string();
    let out = Command::new("pdftoppm")
        .args(["-r", &dpi.to_string(), "-f", &page, "-l", &page])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (width, _, pixels) = ppm(&out.stdout);
    let at = (y * width + x) * 3;
    [pixels[at], pixels[at + 1], pixels[at + 2]]
}

/// A binary PPM ("P6\n<w> <h>\n255\n", then RGB triples): its width, height and pixels.
pub(crate) fn ppm(data: &[u8]) -> (usize, usize, Vec<u8>) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while data[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !data[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..i]).into_owned());
    }
    let (w, h) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    (w, h, data[i + 1..].to_vec())
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// POSTs `body` to `base` + `path`, signed with X-TailPDF-Internal.
pub(crate) async fn signed_post(
    base: &str,
    path: &str,
    secret: &str,
    body: &[u8],
) -> reqwest::Response {
    use tailpdf_shared::signing::{sign_internal, INTERNAL_SIGNATURE_HEADER};
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header(INTERNAL_SIGNATURE_HEADER, sign_internal(secret, now(), "POST", path, body))
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// Waits until `GET {base}/readyz` answers 200.
pub(crate) async fn wait_ready(base: &str) {
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(started.elapsed() < Duration::from_secs(20), "{base} did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
