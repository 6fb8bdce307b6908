//! Fonts from the Google Fonts css2 API, cached on disk.
//!
//! For each spec of a request, the css2 stylesheet (`{base}/css2?family=...`) and every font
//! file it names are fetched once, under the font deadline, and kept in memory and on disk; a
//! later render, or a restarted renderer, asks the API for nothing. The stylesheet goes into the
//! page; Chromium's requests for the files are answered from here by request interception.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine as _};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tailpdf_shared::fonts::FontSpec;
use url::Url;

use crate::error::RenderError;

/// css2 answers with woff2 to browsers it knows; this is the Chromium we run.
const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

/// One font file, ready to hand to Chromium (base64-encoded once, as CDP takes bodies).
#[derive(Debug, Clone)]
pub struct FontFile {
    pub mime: &'static str,
    pub base64: Arc<str>,
}

pub struct FontLibrary {
    client: reqwest::Client,
    api_base: Url,
    dir: PathBuf,
    timeout: Duration,
    /// css2 stylesheets by spec.
    stylesheets: RwLock<HashMap<String, Arc<str>>>,
    /// Font files by the URL the stylesheets give them.
    files: RwLock<HashMap<String, FontFile>>,
}

impl FontLibrary {
    pub fn new(api_base: Url, dir: PathBuf, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .user_agent(BROWSER_USER_AGENT)
            .connect_timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            client,
            api_base,
            dir,
            timeout,
            stylesheets: RwLock::default(),
            files: RwLock::default(),
        }
    }

    /// The `@font-face` rules for `specs`, every file they name in the cache. Fails within the
    /// font deadline, naming the font and what went wrong.
    pub async fn stylesheet(&self, specs: &[FontSpec]) -> Result<String, RenderError> {
        let mut css = String::new();
        let deadline = tokio::time::Instant::now() + self.timeout;
        for spec in specs {
            let one =
                tokio::time::timeout_at(deadline, self.load(spec)).await.unwrap_or_else(|_| {
                    Err(format!(
                        "the fonts API at {} did not answer within {:?}",
                        self.api_base, self.timeout
                    ))
                });
            let sheet = one.map_err(|why| {
                RenderError::Font(format!("Font \"{spec}\" could not be loaded: {why}."))
            })?;
            css.push_str(&sheet);
            css.push('\n');
        }
        Ok(css)
    }

    /// A cached font file, for request interception.
    pub fn file(&self, url: &str) -> Option<FontFile> {
        self.files.read().ok()?.get(url).cloned()
    }

    async fn load(&self, spec: &FontSpec) -> Result<Arc<str>, String> {
        let key = spec.to_string();
        if let Some(sheet) = self.stylesheets.read().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(sheet);
        }
        let disk_name = format!("css2-{}.css", hex_sha256(key.as_bytes()));
        let (sheet, fetched) = match tokio::fs::read_to_string(self.dir.join(&disk_name)).await {
            Ok(cached) => (cached, false),
            Err(_) => {
                let mut url = self.api_base.join("css2").map_err(|e| e.to_string())?;
                url.query_pairs_mut().append_pair("family", &key).append_pair("display", "block");
                let text = String::from_utf8(self.fetch(&url).await?.to_vec()).map_err(|_| {
                    String::from("the fonts API answered with something other than CSS")
                })?;
                if !text.contains("@font-face") {
                    return Err(String::from("the fonts API answered without any @font-face"));
                }
                (text, true)
            }
        };
        for file_url in font_urls(&sheet) {
            self.ensure_file(&file_url).await?;
        }
        // Only a stylesheet whose files are all here is remembered.
        if fetched {
            write_atomically(&self.dir, &disk_name, sheet.as_bytes()).await;
        }
        let sheet: Arc<str> = sheet.into();
        if let Ok(mut m) = self.stylesheets.write() {
            m.insert(key, sheet.clone());
        }
        Ok(sheet)
    }

    async fn ensure_file(&self, url: &str) -> Result<(), String> {
        if self.files.read().map(|m| m.contains_key(url)).unwrap_or(false) {
            return Ok(());
        }
        let disk_name = format!("font-{}", hex_sha256(url.as_bytes()));
        let bytes = match tokio::fs::read(self.dir.join(&disk_name)).await {
            Ok(b) => Bytes::from(b),
            Err(_) => {
                let parsed = Url::parse(url).map_err(|_| format!("bad font URL in css2: {url}"))?;
                let bytes = self.fetch(&parsed).await?;
                write_atomically(&self.dir, &disk_name, &bytes).await;
                bytes
            }
        };
        let file = FontFile { mime: mime_for(url, &bytes), base64: BASE64.encode(&bytes).into() };
        if let Ok(mut m) = self.files.write() {
            m.insert(url.to_owned(), file);
        }
        Ok(())
    }

    async fn fetch(&self, url: &Url) -> Result<Bytes, String> {
        // The fonts API is the operator's and its URLs carry no secrets: show them whole.
        let shown = url.as_str();
        let response = self.client.get(url.clone()).send().await.map_err(|e| {
            let mut causes = Vec::new();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                causes.push(s.to_string());
                source = s.source();
            }
            format!("{shown} could not be fetched ({})", causes.join(": "))
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{shown} answered {status} (is the family name right?)"));
        }
        response.bytes().await.map_err(|_| format!("{shown} broke off the answer"))
    }
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

/// The cache is an optimisation: a file that cannot be written is fetched again next time.
async fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) {
    if tokio::fs::create_dir_all(dir).await.is_err() {
        return;
    }
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    if tokio::fs::write(&tmp, bytes).await.is_ok() {
        let _ = tokio::fs::rename(&tmp, dir.join(name)).await;
    }
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
