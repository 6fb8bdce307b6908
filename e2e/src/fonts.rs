//! A stand-in of the Google Fonts css2 API on loopback: `Inter` is served from Debian's
//! fonts-inter-variable, a family named `Unavailable…` answers 503 (a transient failure), and
//! any other family 400, as css2 answers for a family it does not have. Requests are counted.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use axum::{
    extract::{Query, State},
    http::{header, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};

use crate::servers::Served;

const INTER: &str = "/usr/share/fonts/truetype/inter-vf/Inter-roman.var.ttf";

pub struct FontsApi {
    /// The base URL, for the renderer's `--fonts-api-base`.
    pub base: String,
    hits: Arc<AtomicUsize>,
    _server: Served,
}

#[derive(Clone)]
struct Fonts {
    css: Arc<str>,
    hits: Arc<AtomicUsize>,
}

impl FontsApi {
    pub async fn start() -> Self {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let server = Served::start(|base| {
            let css = format!(
                "@font-face {{ font-family: 'Inter'; font-style: normal; font-weight: 400; \
                 src: url({base}/inter.ttf) format('truetype'); }}"
            );
            Router::new()
                .route("/css2", get(css2))
                .route("/inter.ttf", get(inter))
                .with_state(Fonts { css: css.into(), hits: counted })
        })
        .await;
        Self { base: server.base.clone(), hits, _server: server }
    }

    /// Requests answered so far (stylesheets and files).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn css2(
    State(s): State<Fonts>,
    Query(q): Query<HashMap<String, String>>,
) -> axum::response::Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    let family = q.get("family").map(String::as_str).unwrap_or_default();
    if family.starts_with("Unavailable") {
        return (StatusCode::SERVICE_UNAVAILABLE, "try later").into_response();
    }
    if !family.starts_with("Inter") {
        return (StatusCode::BAD_REQUEST, "unknown family").into_response();
    }
    ([(header::CONTENT_TYPE, "text/css")], s.css.to_string()).into_response()
}

async fn inter(State(s): State<Fonts>) -> axum::response::Response {
    s.hits.fetch_add(1, Ordering::SeqCst);
    ([(header::CONTENT_TYPE, "font/ttf")], tokio::fs::read(INTER).await.unwrap()).into_response()
}
