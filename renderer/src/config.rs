//! The engine's settings: flags of `tailpdf-renderer` with `TAILPDF_*` environment variables,
//! shared by the `render` and `serve` commands.

use std::{path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use url::Url;

#[derive(Args, Debug, Clone)]
pub struct EngineConfig {
    /// The Chromium executable.
    #[arg(long, env = "TAILPDF_CHROMIUM", default_value = "/usr/bin/chromium")]
    pub chromium: PathBuf,

    /// Tabs rendering at once (default: one per CPU core).
    #[arg(long, env = "TAILPDF_TABS")]
    pub tabs: Option<usize>,

    /// Hard deadline of one render; past it the tab is killed and replaced.
    #[arg(long, env = "TAILPDF_RENDER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub render_timeout: Duration,

    /// Restart Chromium after this many renders (keeps its memory in check; 0 = never).
    #[arg(long, env = "TAILPDF_RESTART_AFTER", default_value_t = 1000)]
    pub restart_after: u64,

    /// Base URL of the Google Fonts css2 API (tests point it at a local server).
    #[arg(long, env = "TAILPDF_FONTS_API_BASE", default_value = "https://fonts.googleapis.com")]
    pub fonts_api_base: Url,

    /// Where downloaded font files are kept between renders and restarts.
    #[arg(long, env = "TAILPDF_FONT_CACHE_DIR", default_value_os_t = default_font_cache_dir())]
    pub font_cache_dir: PathBuf,

    /// Deadline for fetching the fonts of one render from the fonts API.
    #[arg(long, env = "TAILPDF_FONT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub font_timeout: Duration,

    /// Deadline for each image, stylesheet or font the page loads itself.
    #[arg(long, env = "TAILPDF_FETCH_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub fetch_timeout: Duration,

    /// Largest resource the page may load, in bytes.
    #[arg(long, env = "TAILPDF_MAX_RESOURCE_BYTES", default_value_t = 20 * 1024 * 1024)]
    pub max_resource_bytes: u64,

    /// Development only: let pages, uploads and webhooks reach loopback addresses.
    #[arg(long, env = "TAILPDF_ALLOW_LOOPBACK")]
    pub allow_loopback: bool,

    /// Chromium's sandbox: `auto` uses it unless running as root or where user namespaces are
    /// unavailable (e.g. Docker's default seccomp profile), and says so in the log.
    #[arg(long, env = "TAILPDF_SANDBOX", value_enum, default_value_t = SandboxMode::Auto)]
    pub sandbox: SandboxMode,
}

/// Whether Chromium runs with its sandbox (see `engine::sandbox`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SandboxMode {
    /// On where it can work: not root, and unprivileged user namespaces available.
    #[default]
    Auto,
    /// Always on; Chromium fails to start where the sandbox cannot work.
    On,
    /// Always off.
    Off,
}

impl EngineConfig {
    pub fn tabs(&self) -> usize {
        self.tabs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
            .max(1)
    }

    pub fn url_policy(&self) -> tailpdf_shared::UrlPolicy {
        tailpdf_shared::UrlPolicy { allow_loopback: self.allow_loopback }
    }
}

fn default_font_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("tailpdf/fonts")
}

/// `30s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 =
        number.parse().map_err(|_| format!("{s:?} is not a duration like 30s or 500ms"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?} has an unknown unit (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
