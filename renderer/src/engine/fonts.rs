//! Fonts from the Google Fonts css2 API, cached in memory and on disk.
//!
//! For each spec of a request, the css2 stylesheet (`{base}/css2?family=...`) and every font
//! file it names are fetched once, under the font deadline, and kept in memory and on disk; a
//! later render, or a restarted renderer, asks the API for nothing. The stylesheet goes into the
//! page; Chromium's requests for the files are answered from here by request interception.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tailpdf_shared::fonts::FontSpec;
use url::Url;

use super::lru::ByteLru;
use crate::error::RenderError;

/// css2 answers with woff2 to browsers it knows; this is the Chromium we run.
const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/// Bytes of css2 stylesheets kept in memory (each is a few KB).
const STYLESHEETS_BYTES: u64 = 4 << 20;

/// One font file, ready to hand to Chromium (base64-encoded once, as CDP takes bodies).
#[derive(Debug)]
pub struct FontFile {
    pub mime: &'static str,
    pub base64: Arc<str>,
}

/// The fonts of one render: their `@font-face` rules, and the files those name, held for the
/// render whatever the cache evicts meanwhile.
#[derive(Debug, Default, Clone)]
pub struct FontSet {
    pub css: String,
    pub files: HashMap<String, Arc<FontFile>>,
}

/// The font cache: css2 stylesheets and font files, in memory and on disk, each bounded in
/// bytes (`--font-cache-max-bytes`), the least recently used evicted first.
pub struct FontLibrary {
    client: reqwest::Client,
    api_base: Url,
    dir: PathBuf,
    timeout: Duration,
    /// css2 stylesheets by spec.
    stylesheets: Mutex<ByteLru<String, Arc<str>>>,
    /// Font files by the URL the stylesheets give them (sized by their base64).
    files: Mutex<ByteLru<String, Arc<FontFile>>>,
    /// The files in `dir`, by name.
    disk: Mutex<ByteLru<String, ()>>,
}

impl FontLibrary {
    /// A library over `dir` (what is there already counts, oldest first to go).
    pub fn new(
        api_base: Url,
        dir: PathBuf,
        timeout: Duration,
        max_bytes: u64,
    ) -> Result<Self, RenderError> {
        // The fonts API is the operator's own setting, so this client is not guarded, and it
        // honours HTTP(S)_PROXY like any client of the operator's.
        let client = reqwest::Client::builder()
            .user_agent(BROWSER_USER_AGENT)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| RenderError::Browser(format!("no HTTP client for the fonts API: {e}")))?;
        let library = Self {
            client,
            api_base,
            timeout,
            stylesheets: Mutex::new(ByteLru::new(STYLESHEETS_BYTES.min(max_bytes))),
            files: Mutex::new(ByteLru::new(max_bytes)),
            disk: Mutex::new(ByteLru::new(max_bytes)),
            dir,
        };
        library.scan_disk();
        Ok(library)
    }

    /// Indexes the files already in the cache directory, least recently modified first, and
    /// removes what does not fit.
    fn scan_disk(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let mut found: Vec<(std::time::SystemTime, String, u64)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let meta = e.metadata().ok()?;
                if !meta.is_file() || name.starts_with('.') {
                    return None;
                }
                Some((meta.modified().ok()?, name, meta.len()))
            })
            .collect();
        found.sort();
        let mut disk = lock(&self.disk);
        for (_, name, size) in found {
            for (gone, ()) in disk.insert(name, (), size) {
                let _ = std::fs::remove_file(self.dir.join(gone));
            }
        }
    }

    /// The `@font-face` rules for `specs` and their files. Fails within the font deadline,
    /// naming the font and what went wrong.
    pub async fn load(&self, specs: &[FontSpec]) -> Result<FontSet, RenderError> {
        let mut set = FontSet::default();
        let deadline = tokio::time::Instant::now() + self.timeout;
        for spec in specs {
            let one = tokio::time::timeout_at(deadline, self.load_one(spec, &mut set.files))
                .await
                .unwrap_or_else(|_| {
                    Err(Fault::Unavailable(format!(
                        "the fonts API at {} did not answer within {:?}",
                        self.api_base, self.timeout
                    )))
                });
            let sheet = one.map_err(|fault| {
                let why = format!("Font \"{spec}\" could not be loaded: {fault}.");
                match fault {
                    // The API does not have what the request names: the request must change.
                    Fault::Refused(_) => RenderError::BadInput(why),
                    Fault::Unavailable(_) => RenderError::Font(why),
                }
            })?;
            set.css.push_str(&sheet);
            set.css.push('\n');
        }
        Ok(set)
    }

    async fn load_one(
        &self,
        spec: &FontSpec,
        files: &mut HashMap<String, Arc<FontFile>>,
    ) -> Result<Arc<str>, Fault> {
        let key = spec.to_string();
        let known = lock(&self.stylesheets).get(&key);
        let sheet = match known {
            Some(sheet) => sheet,
            None => self.stylesheet(key).await?,
        };
        for file_url in font_urls(&sheet) {
            let file = self.file(&file_url).await?;
            files.insert(file_url, file);
        }
        Ok(sheet)
    }

    /// A stylesheet not in memory: from disk, else from the fonts API. Only a stylesheet
    /// whose files are all here is remembered.
    async fn stylesheet(&self, key: String) -> Result<Arc<str>, Fault> {
        let disk_name = format!("css2-{}.css", hex_sha256(key.as_bytes()));
        let (text, fetched) = match self.read_disk(&disk_name).await {
            Some(bytes) => (String::from_utf8_lossy(&bytes).into_owned(), false),
            None => (self.fetch_stylesheet(&key).await?, true),
        };
        for file_url in font_urls(&text) {
            self.file(&file_url).await?;
        }
        if fetched {
            self.write_disk(&disk_name, text.as_bytes()).await;
        }
        let sheet: Arc<str> = text.into();
        lock(&self.stylesheets).insert(key, sheet.clone(), sheet.len() as u64);
        Ok(sheet)
    }

    async fn fetch_stylesheet(&self, family: &str) -> Result<String, Fault> {
        let mut url = self.api_base.join("css2").map_err(|e| Fault::Unavailable(e.to_string()))?;
        url.query_pairs_mut().append_pair("family", family).append_pair("display", "block");
        let text = String::from_utf8(self.fetch(&url).await?.to_vec()).map_err(|_| {
            Fault::Unavailable(String::from("the fonts API answered with something other than CSS"))
        })?;
        if !text.contains("@font-face") {
            return Err(Fault::Unavailable(String::from(
                "the fonts API answered without any @font-face",
            )));
        }
        Ok(text)
    }

    /// A font file: from memory, else from disk, else from the fonts API.
    async fn file(&self, url: &str) -> Result<Arc<FontFile>, Fault> {
        if let Some(file) = lock(&self.files).get(&url.to_owned()) {
            return Ok(file);
        }
        let disk_name = format!("font-{}", hex_sha256(url.as_bytes()));
        let bytes = match self.read_disk(&disk_name).await {
            Some(b) => Bytes::from(b),
            None => {
                let parsed = Url::parse(url)
                    .map_err(|_| Fault::Unavailable(format!("bad font URL in css2: {url}")))?;
                let bytes = self.fetch(&parsed).await?;
                self.write_disk(&disk_name, &bytes).await;
                bytes
            }
        };
        let file = Arc::new(FontFile {
            mime: mime_for(url, &bytes),
            base64: BASE64.encode(&bytes).into(),
        });
        lock(&self.files).insert(url.to_owned(), file.clone(), file.base64.len() as u64);
        Ok(file)
    }

    async fn read_disk(&self, name: &str) -> Option<Vec<u8>> {
        let bytes = tokio::fs::read(self.dir.join(name)).await.ok()?;
        // Known files are now the most recently used; unknown ones (another renderer's) join.
        let known = lock(&self.disk).get(&name.to_owned()).is_some();
        if !known {
            self.note_written(name, bytes.len() as u64).await;
        }
        Some(bytes)
    }

    /// The cache is an optimisation: a file that cannot be written is fetched again next time.
    async fn write_disk(&self, name: &str, bytes: &[u8]) {
        if tokio::fs::create_dir_all(&self.dir).await.is_err() {
            return;
        }
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        if tokio::fs::write(&tmp, bytes).await.is_ok()
            && tokio::fs::rename(&tmp, self.dir.join(name)).await.is_ok()
        {
            self.note_written(name, bytes.len() as u64).await;
        }
    }

    /// Counts a file on disk and removes what no longer fits.
    async fn note_written(&self, name: &str, size: u64) {
        let evicted = lock(&self.disk).insert(name.to_owned(), (), size);
        for (gone, ()) in evicted {
            let _ = tokio::fs::remove_file(self.dir.join(gone)).await;
        }
    }

    /// Bytes of font files held in memory and on disk (tests and metrics).
    pub fn cached_bytes(&self) -> (u64, u64) {
        (lock(&self.files).size(), lock(&self.disk).size())
    }

    async fn fetch(&self, url: &Url) -> Result<Bytes, Fault> {
        // The fonts API is the operator's and its URLs carry no secrets: show them whole.
        let shown = url.as_str();
        let response = self.client.get(url.clone()).send().await.map_err(|e| {
            let mut causes = Vec::new();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                causes.push(s.to_string());
                source = s.source();
            }
            Fault::Unavailable(format!("{shown} could not be fetched ({})", causes.join(": ")))
        })?;
        let status = response.status();
        let transient = matches!(status.as_u16(), 408 | 429);
        if status.is_client_error() && !transient {
            // The css2 API answers 400 for a family or axis it does not have.
            return Err(Fault::Refused(format!(
                "{shown} answered {status} (is the family name right?)"
            )));
        }
        if !status.is_success() {
            return Err(Fault::Unavailable(format!("{shown} answered {status}")));
        }
        response
            .bytes()
            .await
            .map_err(|_| Fault::Unavailable(format!("{shown} broke off the answer")))
    }
}

/// Why a font could not be had: the fonts API refused what was asked for (a 4xx: final), or
/// it could not be reached or failed (worth another try).
#[derive(Debug)]
enum Fault {
    Refused(String),
    Unavailable(String),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) | Self::Unavailable(why) => f.write_str(why),
        }
    }
}

/// A poisoned lock only means a panic elsewhere mid-update of a cache: keep using it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every `url(...)` of a stylesheet.
fn font_urls(css: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = css;
    while let Some(i) = rest.find("url(") {
        rest = &rest[i + 4..];
        let Some(end) = rest.find(')') else { break };
        let url = rest[..end].trim().trim_matches(|c| c == '"' || c == '\'');
        if !url.starts_with("data:") && !out.iter().any(|u| u == url) {
            out.push(url.to_owned());
        }
        rest = &rest[end..];
    }
    out
}

fn mime_for(url: &str, bytes: &[u8]) -> &'static str {
    match bytes.get(..4) {
        Some(b"wOF2") => "font/woff2",
        Some(b"wOFF") => "font/woff",
        Some(b"OTTO") => "font/otf",
        Some([0, 1, 0, 0]) | Some(b"true") => "font/ttf",
        _ if url.ends_with(".woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_a_css2_answer() {
        let css = "@font-face { src: url(https://fonts.gstatic.com/s/inter/v1/a.woff2) format('woff2'); }\n\
                   @font-face { src: url('https://fonts.gstatic.com/s/inter/v1/b.woff2'); }\n\
                   @font-face { src: url(\"https://fonts.gstatic.com/s/inter/v1/a.woff2\"), url(data:font/woff2;base64,AA); }";
        assert_eq!(
            font_urls(css),
            [
                "https://fonts.gstatic.com/s/inter/v1/a.woff2",
                "https://fonts.gstatic.com/s/inter/v1/b.woff2"
            ]
        );
    }

    #[test]
    fn mime_types_from_magic_numbers() {
        assert_eq!(mime_for("x", b"wOF2...."), "font/woff2");
        assert_eq!(mime_for("x", b"OTTO...."), "font/otf");
        assert_eq!(mime_for("x", &[0, 1, 0, 0, 9]), "font/ttf");
        assert_eq!(mime_for("x.bin", b"????"), "application/octet-stream");
    }
}
