//! The engine's settings: flags of `tailpdf-renderer` with `TAILPDF_*` environment variables,
//! shared by the `render` and `serve` commands.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, ValueEnum};
use url::Url;

#[derive(Args, Debug, Clone)]
pub struct EngineConfig {
    /// The Chromium executable. The default is Debian's headless shell, Chromium without its
    /// desktop parts: about half the time to start and print, and less memory, for the same
    /// PDFs (BENCHMARKS.md). Name it in /usr/lib: its /usr/bin wrapper does not exec it, so the
    /// browser would outlive a killed renderer. `/usr/bin/chromium` is the whole browser.
    #[arg(
        long,
        env = "TAILPDF_CHROMIUM",
        default_value = "/usr/lib/chromium/chromium-headless-shell"
    )]
    pub chromium: PathBuf,

    /// Tabs rendering at once (default: one per CPU core). One account alone may use all of
    /// them, up to --account-tabs.
    #[arg(long, env = "TAILPDF_TABS")]
    pub tabs: Option<usize>,

    /// Most renders of one account at once (default: --tabs). Waiting renders are served
    /// round-robin between accounts, the account with the fewest running first.
    #[arg(long, env = "TAILPDF_ACCOUNT_TABS")]
    pub account_tabs: Option<usize>,

    /// Tabs beyond --tabs for a render of an account with nothing running, when every tab is
    /// busy with others' renders, so a neighbour's long renders never hold it up; as many
    /// again for a sync render of an account with no sync render running (so it never waits
    /// behind its own account's jobs and batches). 0: none.
    #[arg(long, env = "TAILPDF_GUEST_TABS", default_value_t = 1)]
    pub guest_tabs: usize,

    /// Browser contexts kept warm, each for one account's next document that runs scripts
    /// (default: --tabs). Such a document renders in a context of its own; one of an account
    /// that rendered one lately reuses that account's context, its tab reset to a new blank
    /// document, instead of starting a new one (a new page process: about half the time of
    /// such a render). Never shared between accounts; 0: a new context for every document.
    #[arg(long, env = "TAILPDF_WARM_CONTEXTS")]
    pub warm_contexts: Option<usize>,

    /// Once no render has run for this long, Chromium collects its garbage (every page: tabs,
    /// contexts, the compiler), which it would otherwise keep until the next renders' own
    /// allocations push it. 0: never.
    #[arg(long, env = "TAILPDF_REST_AFTER", default_value = "10s", value_parser = parse_duration)]
    pub rest_after: Duration,

    /// Hard deadline of one render; past it the tab is killed and replaced.
    #[arg(long, env = "TAILPDF_RENDER_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub render_timeout: Duration,

    /// How long Chromium may take to start (its DevTools address, then its compiler page). A
    /// start that takes longer is tried again with twice the patience, three tries in all: a
    /// loaded machine is slow once, not for good.
    #[arg(long, env = "TAILPDF_LAUNCH_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub launch_timeout: Duration,

    /// Restart Chromium after this many renders (keeps its memory in check; 0 = never).
    #[arg(long, env = "TAILPDF_RESTART_AFTER", default_value_t = 1000)]
    pub restart_after: u64,

    /// Base URL of the Google Fonts css2 API (tests point it at a local server).
    #[arg(long, env = "TAILPDF_FONTS_API_BASE", default_value = "https://fonts.googleapis.com")]
    pub fonts_api_base: Url,

    /// Where downloaded font files are kept between renders and restarts.
    #[arg(long, env = "TAILPDF_FONT_CACHE_DIR", default_value_os_t = default_font_cache_dir())]
    pub font_cache_dir: PathBuf,

    /// Bytes of fonts kept, on disk and in memory each; the least recently used go first.
    #[arg(long, env = "TAILPDF_FONT_CACHE_MAX_BYTES", default_value = "256MiB", value_parser = parse_bytes)]
    pub font_cache_max_bytes: u64,

    /// Deadline for fetching the fonts of one render from the fonts API.
    #[arg(long, env = "TAILPDF_FONT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub font_timeout: Duration,

    /// Deadline for each image, stylesheet or font the page loads itself.
    #[arg(long, env = "TAILPDF_FETCH_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub fetch_timeout: Duration,

    /// Deadline of one Tailwind CSS generation; past it the compiler worker is replaced and
    /// the render fails.
    #[arg(long, env = "TAILPDF_COMPILER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub compiler_timeout: Duration,

    /// Deadline of the post-processing stage (metadata, PDF/A, encryption) of one PDF,
    /// apart from the render's.
    #[arg(long, env = "TAILPDF_POSTPROCESS_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub postprocess_timeout: Duration,

    /// The qpdf executable, which encrypts PDFs (`pdfOptions.password`).
    #[arg(long, env = "TAILPDF_QPDF", default_value = "qpdf")]
    pub qpdf: PathBuf,

    #[command(flatten)]
    pub limits: RenderLimits,

    /// Development only: let pages, uploads and webhooks reach loopback addresses.
    #[arg(long, env = "TAILPDF_ALLOW_LOOPBACK")]
    pub allow_loopback: bool,

    /// Chromium's sandbox: `auto` uses it wherever user namespaces work (as root, by running
    /// Chromium as `--chromium-user`), and says in the log when it cannot.
    #[arg(long, env = "TAILPDF_SANDBOX", value_enum, default_value_t = SandboxMode::Auto)]
    pub sandbox: SandboxMode,

    /// When the renderer runs as root: the unprivileged user Chromium runs as (Chromium
    /// refuses its sandbox as root). A name or a numeric uid.
    #[arg(long, env = "TAILPDF_CHROMIUM_USER", default_value = "nobody")]
    pub chromium_user: String,
}

/// What one render may use. Past a limit the render fails with an error that names the flag.
#[derive(Args, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// Largest resource (image, stylesheet, font, frame) the page may load.
    #[arg(long = "max-resource-bytes", env = "TAILPDF_MAX_RESOURCE_BYTES", default_value = "20MiB", value_parser = parse_bytes)]
    pub resource_bytes: u64,

    /// Bytes the page may load in all, per render.
    #[arg(long = "max-render-bytes", env = "TAILPDF_MAX_RENDER_BYTES", default_value = "100MiB", value_parser = parse_bytes)]
    pub render_bytes: u64,

    /// Requests the page may make (images, stylesheets, fonts, frames), per render.
    #[arg(long = "max-requests", env = "TAILPDF_MAX_REQUESTS", default_value_t = 500)]
    pub requests: u32,

    /// Requests of one render fetched at the same time.
    #[arg(
        long = "max-concurrent-requests",
        env = "TAILPDF_MAX_CONCURRENT_REQUESTS",
        default_value_t = 8
    )]
    pub concurrent_requests: u32,

    /// Pages of one PDF.
    #[arg(long = "max-pages", env = "TAILPDF_MAX_PAGES", default_value_t = 2000)]
    pub pages: u32,

    /// Bytes of one PDF.
    #[arg(long = "max-pdf-bytes", env = "TAILPDF_MAX_PDF_BYTES", default_value = "200MiB", value_parser = parse_bytes)]
    pub pdf_bytes: u64,

    /// Distinct class names of one render (its document, templates and scripts together).
    #[arg(long = "max-classes", env = "TAILPDF_MAX_CLASSES", default_value_t = 20_000)]
    pub classes: usize,

    /// Bytes of Tailwind CSS generated for one render.
    #[arg(long = "max-css-bytes", env = "TAILPDF_MAX_CSS_BYTES", default_value = "16MiB", value_parser = parse_bytes)]
    pub css_bytes: u64,
}

/// Whether Chromium runs with its sandbox (see `engine::sandbox`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SandboxMode {
    /// On where it can work: unprivileged user namespaces available (as root, Chromium runs
    /// as `--chromium-user`).
    #[default]
    Auto,
    /// Always on; Chromium fails to start where the sandbox cannot work.
    On,
    /// Always off.
    Off,
}

impl EngineConfig {
    /// The settings as `--help` shows their defaults (`TAILPDF_*` variables apply, as they
    /// would on the command line): a base for tests and benchmarks to change.
    pub fn defaults() -> Self {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            engine: EngineConfig,
        }
        Only::parse_from(["tailpdf-renderer"]).engine
    }

    /// Warm browser contexts kept for accounts (`--warm-contexts`).
    pub fn warm_contexts(&self) -> usize {
        self.warm_contexts.unwrap_or_else(|| self.tabs())
    }

    pub fn tabs(&self) -> usize {
        self.tabs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
            .max(1)
    }

    /// The post-processing stage's settings.
    pub fn postprocess(&self) -> crate::postprocess::Config {
        crate::postprocess::Config { timeout: self.postprocess_timeout, qpdf: self.qpdf.clone() }
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

/// `30s`, `500ms`, `2m`, `1h 30m` (humantime's forms) or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration like 30s, 500ms or 2m: {e}"))
}

/// `1048576`, `512KiB`, `20MiB`, `1GiB` (or KB, MB, GB in powers of ten).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a size like 20MiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000 * 1000,
        "gb" => 1000 * 1000 * 1000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(format!("{s:?} has an unknown unit (use KiB, MiB, GiB or KB, MB, GB)")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{s:?} is too large"))
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
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        for bad in ["soon", "5 parsecs", "-1", ""] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("20971520"), Ok(20 << 20));
        assert_eq!(parse_bytes("20MiB"), Ok(20 << 20));
        assert_eq!(parse_bytes("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("64kb"), Ok(64_000));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5TB").is_err());
        assert!(parse_bytes("99999999999GiB").is_err());
    }

    #[test]
    fn defaults_are_the_flags_defaults() {
        let d = EngineConfig::defaults();
        assert_eq!(d.limits.resource_bytes, 20 << 20);
        assert_eq!(d.limits.requests, 500);
        assert_eq!(d.compiler_timeout, Duration::from_secs(10));
        assert_eq!(d.sandbox, SandboxMode::Auto);
    }
}
