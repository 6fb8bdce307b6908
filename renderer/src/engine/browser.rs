//! One Chromium process: launching it, noticing when it dies, and closing it so that nothing of
//! it is left behind (no orphan, no zombie).

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use nix::{
    sys::{
        signal::{kill, Signal},
        wait::{waitpid, WaitPidFlag},
    },
    unistd::Pid,
};
use tokio::{sync::Mutex, task::JoinHandle};

use crate::{config::EngineConfig, error::RenderError, tailwind};

/// Chromium flags (chromiumoxide adds the `--`). Every name resolves to nothing: the page's
/// requests are answered by the engine's interceptor, so Chromium itself never needs DNS.
const FLAGS: &[&str] = &[
    "disable-gpu",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "disable-default-apps",
    "disable-extensions",
    "no-first-run",
    "disable-quic",
    "disable-breakpad",
    "disable-dev-shm-usage",
    "disable-background-timer-throttling",
    "disable-renderer-backgrounding",
    "disable-backgrounding-occluded-windows",
    "host-resolver-rules=MAP * ~NOTFOUND",
];

fn browser_config(
    executable: &Path,
    profile: &Path,
    request_timeout: Duration,
    sandbox: bool,
) -> Result<BrowserConfig, RenderError> {
    let mut builder = BrowserConfig::builder()
        .chrome_executable(executable)
        .new_headless_mode()
        .user_data_dir(profile)
        .request_timeout(request_timeout)
        .launch_timeout(Duration::from_secs(20))
        .viewport(None)
        .window_size(1280, 1024)
        .args(FLAGS.iter().copied());
    // Decided by `sandbox::resolve` (`--sandbox`).
    if !sandbox {
        builder = builder.no_sandbox();
    }
    builder.build().map_err(RenderError::Browser)
}

/// A running Chromium with its Tailwind compiler page.
pub(crate) struct Instance {
    pub(crate) generation: u64,
    browser: Mutex<Browser>,
    pub(crate) compiler: Page,
    dead: Arc<AtomicBool>,
    pid: Option<u32>,
    handler: JoinHandle<()>,
    /// Holds the profile and the launcher; its path marks every process of this browser.
    home: tempfile::TempDir,
}

impl Instance {
    pub(crate) async fn launch(
        cfg: &EngineConfig,
        generation: u64,
        sandbox: bool,
    ) -> Result<Arc<Self>, RenderError> {
        let home = tempfile::Builder::new()
            .prefix("tailpdf-chromium-")
            .tempdir()
            .map_err(|e| RenderError::Browser(format!("no user-data-dir: {e}")))?;
        let executable = launcher(home.path(), &cfg.chromium)
            .map_err(|e| RenderError::Browser(format!("no launcher script: {e}")))?;
        let profile = home.path().join("profile");
        let config = browser_config(&executable, &profile, cfg.render_timeout, sandbox)?;
        let (mut browser, mut handler) = Browser::launch(config).await.map_err(|e| {
            let hint = if sandbox {
                " (with its sandbox, which needs a non-root user and user namespaces: \
                 try --sandbox auto or off)"
            } else {
                ""
            };
            RenderError::Browser(format!("could not start {}{hint}: {e}", cfg.chromium.display()))
        })?;
        let pid = browser.get_mut_child().and_then(|c| c.as_mut_inner().id());

        // The handler must be polled for the browser's whole life. Its first error means the
        // connection is gone: stop, so that every pending call fails at once.
        let dead = Arc::new(AtomicBool::new(false));
        let handler = tokio::spawn({
            let dead = dead.clone();
            async move {
                while let Some(event) = handler.next().await {
                    if let Err(e) = event {
                        tracing::warn!(error = %e, "chromium connection lost");
                        break;
                    }
                }
                dead.store(true, Ordering::SeqCst);
            }
        });

        let compiler = browser
            .new_page("about:blank")
            .await
            .map_err(|e| RenderError::Browser(format!("no compiler page: {e}")))?;
        let instance = Arc::new(Self {
            generation,
            browser: Mutex::new(browser),
            compiler,
            dead,
            pid,
            handler,
            home,
        });
        if let Err(e) = tailwind::install(&instance.compiler, Duration::from_secs(20)).await {
            instance.close().await;
            return Err(e);
        }
        tracing::info!(generation, pid, "chromium started");
        Ok(instance)
    }

    pub(crate) fn pid(&self) -> Option<u32> {
        self.pid
    }

    pub(crate) fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
    }

    pub(crate) async fn new_page(&self) -> Result<Page, RenderError> {
        let browser = self.browser.lock().await;
        browser
            .new_page("about:blank")
            .await
            .map_err(|e| RenderError::Browser(format!("no new tab: {e}")))
    }

    /// Closes Chromium and everything it started. Safe to call on a dead instance.
    pub(crate) async fn close(&self) {
        let mut browser = self.browser.lock().await;
        if self.is_alive() {
            let _ = tokio::time::timeout(Duration::from_secs(5), browser.close()).await;
        }
        if tokio::time::timeout(Duration::from_secs(5), browser.wait()).await.is_err() {
            let _ = browser.kill().await;
        }
        self.handler.abort();
        let dir = self.home.path().to_path_buf();
        let pid = self.pid;
        let _ = tokio::task::spawn_blocking(move || {
            kill_leftovers(&dir);
            reap_orphans(pid);
        })
        .await;
        tracing::info!(generation = self.generation, "chromium closed");
    }
}

/// A Chromium with the engine's flags and nothing else: the floor of the benchmark, and the
/// browser of tests that look at pages directly.
pub struct BareBrowser {
    pub browser: Browser,
    handler: JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl BareBrowser {
    /// Starts Chromium with the sandbox where `--sandbox auto` would use it.
    pub async fn launch(chromium: &Path) -> Result<Self, RenderError> {
        let profile = tempfile::tempdir().map_err(|e| RenderError::Browser(e.to_string()))?;
        let sandbox = super::sandbox::resolve(crate::config::SandboxMode::Auto).await;
        let config = browser_config(chromium, profile.path(), Duration::from_secs(30), sandbox)?;
        let (browser, mut handler) =
            Browser::launch(config).await.map_err(|e| RenderError::Browser(e.to_string()))?;
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Ok(Self { browser, handler, _profile: profile })
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

/// A script that starts Chromium with `PR_SET_PDEATHSIG`: if this process dies, even by
/// SIGKILL, the kernel kills the browser too, so no orphaned Chromium is left running. (The
/// signal follows the launching thread; launches happen on the runtime's long-lived workers.)
fn launcher(dir: &Path, chromium: &Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    const SETPRIV: &str = "/usr/bin/setpriv";
    if !Path::new(SETPRIV).exists() {
        return Ok(chromium.to_path_buf());
    }
    let quoted = chromium.to_string_lossy().replace('\'', "'\\''");
    let script = format!("#!/bin/sh\nexec {SETPRIV} --pdeathsig KILL '{quoted}' \"$@\"\n");
    let path = dir.join("launch-chromium");
    std::fs::write(&path, script)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// Makes this process the reaper of Chromium's helpers: when the browser exits, its helper
/// processes become our children rather than init's, and [`reap_orphans`] collects them, so
/// no zombie outlives a browser even where PID 1 does not reap.
pub(crate) fn become_subreaper() {
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(error = %e, "cannot become a child subreaper; chromium helpers are left to init");
    }
}

/// SIGKILLs any process still running with this browser's directory on its command line.
fn kill_leftovers(user_data_dir: &Path) {
    let needle = user_data_dir.to_string_lossy().into_owned();
    for (pid, cmdline, _) in processes() {
        if cmdline.contains(&needle) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Collects exited processes that were re-parented to us (never `main_pid`, which its owner
/// waits for).
pub(crate) fn reap_orphans(main_pid: Option<u32>) {
    let me = std::process::id();
    // Helpers die a moment after the browser; look a few times.
    for attempt in 0..20 {
        let mut waiting = false;
        for (pid, _, stat) in processes() {
            let Some((ppid, state)) = parse_stat(&stat) else { continue };
            // Only Chromium's processes: other children of ours are waited for by their owners.
            let chromium = stat.contains("(chrom");
            if ppid != me || !chromium || Some(pid as u32) == main_pid {
                continue;
            }
            if state == 'Z' {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            } else {
                waiting = true;
            }
        }
        if !waiting {
            return;
        }
        std::thread::sleep(Duration::from_millis(25 * (attempt + 1)));
    }
}

/// (ppid, state) from /proc/PID/stat.
fn parse_stat(stat: &str) -> Option<(u32, char)> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// (pid, cmdline, stat) of every process we can read.
fn processes() -> Vec<(i32, String, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " "), stat))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        assert_eq!(parse_stat("123 (chromium) Z 77 123 1 0"), Some((77, 'Z')));
        assert_eq!(parse_stat("9 (a) b) c) S 1 9"), Some((1, 'S')));
        assert_eq!(parse_stat("garbage"), None);
    }
}
