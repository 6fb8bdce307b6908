//! One Chromium process: launching it (never as root, in its sandbox where it can be), its
//! Tailwind compiler page and its shared browser context, fresh browser contexts, health
//! checks, and closing it so that nothing of it is left behind (no orphan, no zombie).

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chromiumoxide::{
    cdp::{
        browser_protocol::{
            browser::{BrowserContextId, GetVersionParams},
            target::{CreateBrowserContextParams, CreateTargetParams},
        },
        js_protocol::heap_profiler::CollectGarbageParams,
    },
    error::CdpError,
    Browser, BrowserConfig, Page,
};
use futures::StreamExt;
use nix::{
    sys::{
        signal::{kill, Signal},
        wait::{waitpid, WaitPidFlag},
    },
    unistd::Pid,
};
use tokio::{sync::RwLock, task::JoinHandle};

use super::{
    prints::{PageProcess, Prints},
    sandbox::Plan,
    tailwind,
};
use crate::{config::EngineConfig, error::RenderError};

/// How long one page may take to collect its garbage.
const GC_TIMEOUT: Duration = Duration::from_secs(5);

/// Chromium's flags (chromiumoxide adds the `--`), in full: chromiumoxide's own defaults are
/// off, since they include `--disable-popup-blocking`.
const FLAGS: &[&str] = &[
    "disable-background-networking",
    "disable-background-timer-throttling",
    "disable-backgrounding-occluded-windows",
    "disable-renderer-backgrounding",
    "disable-breakpad",
    "disable-client-side-phishing-detection",
    "disable-component-extensions-with-background-pages",
    "disable-component-update",
    "disable-default-apps",
    "disable-dev-shm-usage",
    "disable-extensions",
    // Each browser context (a window, in this headless mode) would start a page process of
    // its own for the WebUI omnibox popups and a spare one: two more per fresh context.
    "disable-features=TranslateUI,Translate,MediaRouter,OptimizationHints,AcceptCHFrame,\
     WebUIOmniboxPopup,WebUIOmniboxAimPopup,SpareRendererForSitePerProcess",
    "disable-gpu",
    "disable-hang-monitor",
    "disable-ipc-flooding-protection",
    "disable-prompt-on-repost",
    "disable-quic",
    "disable-sync",
    "enable-features=NetworkService,NetworkServiceInProcess",
    "force-color-profile=srgb",
    // Glyph advances unhinted, as Chromium's own headless mode lays text out: the headless
    // shell (an alternative build) hints them by default, which moves CJK, Indic and Thai text.
    "font-render-hinting=none",
    "metrics-recording-only",
    "no-first-run",
    "password-store=basic",
    "use-mock-keychain",
    "lang=en_US",
    // Every name and address (IP literals too) resolves to nothing: the page's requests are
    // answered by the engine's interceptor, so Chromium itself never connects anywhere, which
    // also stops WebSockets, preconnects and TURN over TCP.
    "host-resolver-rules=MAP * ~NOTFOUND",
    // WebRTC's UDP (STUN, TURN over UDP) does not use the resolver: no UDP unless proxied,
    // and there is no proxy. The whole browser reads the first switch, the headless shell
    // only the second (each ignores the other's).
    "webrtc-ip-handling-policy=disable_non_proxied_udp",
    "force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    // No popups: the whole browser's popup blocker does it there; the headless shell has
    // none, and this switch of its own makes `window.open` fail.
    "block-new-web-contents",
];

fn browser_config(
    executable: &Path,
    home: &Path,
    request_timeout: Duration,
    patience: Duration,
    sandbox: bool,
) -> Result<BrowserConfig, RenderError> {
    let mut builder = BrowserConfig::builder()
        .chrome_executable(executable)
        .new_headless_mode()
        .user_data_dir(home.join("profile"))
        // Chromium puts its singleton socket in a new directory of $TMPDIR and removes it only
        // on a clean exit: a killed browser would leave one behind in /tmp for good.
        .env("TMPDIR", home.to_string_lossy())
        .request_timeout(request_timeout)
        .launch_timeout(patience)
        .viewport(None)
        .window_size(1280, 1024)
        .disable_default_args()
        .args(FLAGS.iter().copied());
    if !sandbox {
        builder = builder.no_sandbox();
    }
    builder.build().map_err(RenderError::Browser)
}

/// A Chromium process of ours: its home (profile, launcher), the process and its CDP handler.
struct Process {
    browser: RwLock<Browser>,
    dead: Arc<AtomicBool>,
    pid: Option<u32>,
    handler: JoinHandle<()>,
    /// Holds the profile and the launcher; its path marks every process of this browser.
    home: tempfile::TempDir,
}

impl Process {
    /// Starts Chromium, waiting for its DevTools address no longer than `patience`.
    async fn launch(
        chromium: &Path,
        plan: Plan,
        request_timeout: Duration,
        patience: Duration,
    ) -> Result<Self, LaunchError> {
        let home = tempfile::Builder::new()
            .prefix("tailpdf-chromium-")
            .tempdir()
            .map_err(|e| RenderError::Browser(format!("no user-data-dir: {e}")))?;
        let executable = launcher(home.path(), chromium, plan.run_as)
            .map_err(|e| RenderError::Browser(format!("no launcher script: {e}")))?;
        let config =
            browser_config(&executable, home.path(), request_timeout, patience, plan.sandbox)?;
        // The launcher was just written: a fork on another thread (another browser's launch)
        // may hold it open for writing until its child execs, and exec then fails with
        // ETXTBSY, "Text file busy". That passes within moments; it is tried again.
        let mut busy = 0;
        let (mut browser, mut handler) = loop {
            match Browser::launch(config.clone()).await {
                Err(CdpError::Io(e) | CdpError::LaunchIo(e, _))
                    if e.kind() == std::io::ErrorKind::ExecutableFileBusy && busy < 5 =>
                {
                    busy += 1;
                    tokio::time::sleep(Duration::from_millis(20 * busy)).await;
                }
                Err(CdpError::LaunchTimeout(_)) => {
                    // Chromium itself was killed; what it had started yet goes too.
                    let dir = home.path().to_path_buf();
                    let _ = tokio::task::spawn_blocking(move || kill_leftovers(&dir)).await;
                    return Err(LaunchError::Slow(RenderError::Browser(format!(
                        "{} did not start within {patience:?}",
                        chromium.display()
                    ))));
                }
                launched => break launched,
            }
        }
        .map_err(|e| {
            let hint = if plan.sandbox {
                " (with its sandbox, which needs user namespaces: try --sandbox auto or off)"
            } else {
                ""
            };
            RenderError::Browser(format!("could not start {}{hint}: {e}", chromium.display()))
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
        Ok(Self { browser: RwLock::new(browser), dead, pid, handler, home })
    }

    /// Closes Chromium and everything it started. Safe to call on a dead or hung one.
    async fn close(&self) {
        let mut browser = self.browser.write().await;
        if !self.dead.load(Ordering::SeqCst) {
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
    }
}

/// A running Chromium with its Tailwind compiler page and the browser context its shared tabs
/// live in (apart from the compiler's, so a page that crashes its process cannot take the
/// compiler with it).
pub(crate) struct Instance {
    pub(crate) generation: u64,
    process: Process,
    pub(crate) compiler: Page,
    shared_context: BrowserContextId,
    /// The shared context's first tab, never used: it stays in front of the shared tabs,
    /// which open behind it. A hidden tab prints the same, but Chromium draws no frames of it
    /// for a screen nobody sees (a quarter of a PDF's CPU time, BENCHMARKS.md). No script runs
    /// in a shared tab, so none can tell.
    _cover: Page,
    /// Set when Chromium stopped answering (a health check or a close timed out): the next
    /// render replaces it.
    unhealthy: AtomicBool,
    /// Its prints under way, and the compositors of those abandoned.
    pub(crate) prints: Prints,
    /// Held while a tab is made, so that the page process that appears meanwhile is its.
    making: tokio::sync::Mutex<()>,
}

/// A new tab, and its page process if known.
pub(crate) type NewPage = (Page, Option<Arc<PageProcess>>);

/// A new blank tab in `context`, behind the tabs already there if `background`.
fn blank_tab(context: BrowserContextId, background: bool) -> CreateTargetParams {
    let mut params = CreateTargetParams::new("about:blank");
    params.browser_context_id = Some(context);
    params.background = Some(background);
    params
}

/// Why a start of Chromium failed: too slow (worth another try, with more patience), or not.
#[derive(Debug)]
enum LaunchError {
    Slow(RenderError),
    Failed(RenderError),
}

impl From<RenderError> for LaunchError {
    fn from(e: RenderError) -> Self {
        Self::Failed(e)
    }
}

/// Starts of Chromium tried before giving up, each with twice the patience of the last: a
/// loaded machine can take longer than `--launch-timeout` once and be fine the next time.
const LAUNCH_ATTEMPTS: u32 = 3;

impl Instance {
    /// Starts Chromium and its compiler page, trying again with twice the patience (from
    /// `--launch-timeout`) when a start is too slow.
    pub(crate) async fn launch(
        cfg: &EngineConfig,
        generation: u64,
        plan: Plan,
        compositors_stopped: Arc<std::sync::atomic::AtomicU64>,
    ) -> Result<Arc<Self>, RenderError> {
        let mut patience = cfg.launch_timeout;
        for attempt in 1.. {
            let stopped = compositors_stopped.clone();
            match Self::launch_once(cfg, generation, plan, stopped, patience).await {
                Ok(instance) => return Ok(instance),
                Err(LaunchError::Slow(e)) if attempt < LAUNCH_ATTEMPTS => {
                    tracing::warn!(attempt, error = %e, "chromium was slow to start: trying again");
                    patience *= 2;
                }
                Err(LaunchError::Slow(e) | LaunchError::Failed(e)) => return Err(e),
            }
        }
        unreachable!("the loop returns")
    }

    async fn launch_once(
        cfg: &EngineConfig,
        generation: u64,
        plan: Plan,
        compositors_stopped: Arc<std::sync::atomic::AtomicU64>,
        patience: Duration,
    ) -> Result<Arc<Self>, LaunchError> {
        let process = Process::launch(&cfg.chromium, plan, cfg.render_timeout, patience).await?;
        let setup = async {
            let browser = process.browser.read().await;
            let compiler = browser
                .new_page("about:blank")
                .await
                .map_err(|e| RenderError::Browser(format!("no compiler page: {e}")))?;
            let shared_context = browser
                .create_browser_context(CreateBrowserContextParams::default())
                .await
                .map_err(|e| RenderError::Browser(format!("no shared browser context: {e}")))?;
            // The cover tab opens while the compiler loads.
            let cover = browser.new_page(blank_tab(shared_context.clone(), false));
            // A compiler worker per render that can run at once, guests included.
            let workers = super::schedule::Shares::of(cfg).at_most();
            // The setup's own deadline (below) comes first.
            let install = tailwind::install(&compiler, workers, patience * 2);
            let (cover, installed) = futures::future::join(cover, install).await;
            let cover = cover.map_err(|e| RenderError::Browser(format!("no cover tab: {e}")))?;
            installed?;
            drop(browser);
            Ok::<_, RenderError>((compiler, shared_context, cover))
        };
        let (compiler, shared_context, cover) = match tokio::time::timeout(patience, setup).await {
            Ok(Ok(parts)) => parts,
            Ok(Err(e)) => {
                process.close().await;
                return Err(LaunchError::Failed(e));
            }
            Err(_) => {
                process.close().await;
                return Err(LaunchError::Slow(RenderError::Browser(format!(
                    "chromium's compiler page was not ready within {patience:?}"
                ))));
            }
        };
        tracing::info!(generation, pid = process.pid, sandbox = plan.sandbox, "chromium started");
        // A print lasts no longer than its render's deadline: its compositor is stopped
        // within that and a margin.
        let patience = cfg.render_timeout + Duration::from_secs(30);
        let prints = Prints::new(process.pid, patience, compositors_stopped);
        Ok(Arc::new(Self {
            generation,
            process,
            compiler,
            shared_context,
            _cover: cover,
            unhealthy: AtomicBool::new(false),
            prints,
            making: tokio::sync::Mutex::default(),
        }))
    }

    #[cfg(feature = "testing")]
    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.pid
    }

    /// Alive and answering, as far as we know.
    pub(crate) fn is_alive(&self) -> bool {
        !self.process.dead.load(Ordering::SeqCst) && !self.unhealthy.load(Ordering::SeqCst)
    }

    /// Chromium stopped answering: have it replaced.
    pub(crate) fn mark_unhealthy(&self, why: &str) {
        if !self.unhealthy.swap(true, Ordering::SeqCst) {
            tracing::warn!(generation = self.generation, why, "chromium will be replaced");
        }
    }

    /// Whether the browser and its compiler page both answer within `timeout`.
    pub(crate) async fn ping(&self, timeout: Duration) -> bool {
        let check = async {
            let browser = self.process.browser.read().await;
            browser.execute(GetVersionParams::default()).await.ok()?;
            drop(browser);
            super::cdp::evaluate(&self.compiler, String::from("1"), timeout, "the compiler page")
                .await
                .ok()
        };
        matches!(tokio::time::timeout(timeout, check).await, Ok(Some(_)))
    }

    /// A new tab in the shared browser context, hidden behind its cover tab.
    pub(crate) async fn new_shared_page(&self) -> Result<NewPage, RenderError> {
        self.new_page(blank_tab(self.shared_context.clone(), true)).await
    }

    /// A new browser context with one tab.
    pub(crate) async fn new_fresh_page(&self) -> Result<(BrowserContextId, NewPage), RenderError> {
        let context = self
            .process
            .browser
            .read()
            .await
            .create_browser_context(CreateBrowserContextParams::default())
            .await
            .map_err(|e| RenderError::Browser(format!("no browser context: {e}")))?;
        // In front, the only tab of its context's window: a page that runs scripts sees a
        // visible page, where `requestAnimationFrame` runs.
        match self.new_page(blank_tab(context.clone(), false)).await {
            Ok(page) => Ok((context, page)),
            Err(e) => {
                let _ = self.dispose(context).await;
                Err(e)
            }
        }
    }

    /// A new tab, and its page process if one, and only one, appeared as it was made (Chromium
    /// starts a tab's process before it answers; another that started meanwhile, for a frame
    /// of a document, makes the answer unknown).
    async fn new_page(&self, params: CreateTargetParams) -> Result<NewPage, RenderError> {
        let _making = self.making.lock().await;
        let browser = self.process.pid;
        let renderers = move || async move {
            let Some(browser) = browser else { return Vec::new() };
            let found =
                tokio::task::spawn_blocking(move || processes_of(browser, "--type=renderer"));
            found.await.unwrap_or_default().into_iter().map(|(pid, _)| pid).collect::<Vec<_>>()
        };
        let before = renderers().await;
        let page = self
            .process
            .browser
            .read()
            .await
            .new_page(params)
            .await
            .map_err(|e| RenderError::Browser(format!("no new tab: {e}")))?;
        let appeared: Vec<i32> =
            renderers().await.into_iter().filter(|pid| !before.contains(pid)).collect();
        let process = match appeared[..] {
            [pid] => Some(PageProcess::new(pid)),
            _ => None,
        };
        Ok((page, process))
    }

    /// Disposes of a browser context and everything in it (its pages, popups, storage,
    /// service workers, processes).
    pub(crate) async fn dispose(&self, context: BrowserContextId) -> Result<(), RenderError> {
        let browser = self.process.browser.read().await;
        browser.dispose_browser_context(context).await.map_err(|e| {
            RenderError::Browser(format!("a browser context was not disposed of: {e}"))
        })
    }

    /// Every page of this Chromium (shared tabs, spare and warm contexts' tabs, the cover tab,
    /// the compiler page).
    pub(crate) async fn pages(&self) -> Vec<Page> {
        self.process.browser.read().await.pages().await.unwrap_or_default()
    }

    /// Has every page collect its JavaScript garbage; answers how many did.
    pub(crate) async fn collect_garbage(&self) -> usize {
        let mut collected = 0;
        for page in self.pages().await {
            let gc = page.execute(CollectGarbageParams::default());
            if matches!(tokio::time::timeout(GC_TIMEOUT, gc).await, Ok(Ok(_))) {
                collected += 1;
            }
        }
        collected
    }

    /// Closes Chromium and everything it started.
    pub(crate) async fn close(&self) {
        self.process.close().await;
        tracing::info!(generation = self.generation, "chromium closed");
    }
}

/// A Chromium with the engine's flags, sandbox and user, and nothing else: the floor of the
/// benchmark, and the browser of tests that look at pages directly.
#[cfg(feature = "testing")]
pub struct BareBrowser {
    process: Process,
}

#[cfg(feature = "testing")]
impl BareBrowser {
    pub async fn launch(chromium: &Path) -> Result<Self, RenderError> {
        let plan = super::sandbox::resolve(crate::config::SandboxMode::Auto, "nobody").await?;
        let timeout = Duration::from_secs(30);
        let process = Process::launch(chromium, plan, timeout, timeout).await;
        let process = process.map_err(|(LaunchError::Slow(e) | LaunchError::Failed(e))| e)?;
        Ok(Self { process })
    }

    /// A new tab.
    pub async fn new_page(&self) -> Result<Page, RenderError> {
        self.process
            .browser
            .read()
            .await
            .new_page("about:blank")
            .await
            .map_err(|e| RenderError::Browser(e.to_string()))
    }

    pub async fn close(self) {
        self.process.close().await;
    }
}

/// A script that starts Chromium with `PR_SET_PDEATHSIG` (if this process dies, even by
/// SIGKILL, the kernel kills the browser too, so no orphaned Chromium is left running) and, as
/// root, as the unprivileged `run_as`, which then owns `dir` (its home and profile). The
/// signal follows the launching thread; launches happen on the runtime's long-lived workers.
fn launcher(dir: &Path, chromium: &Path, run_as: Option<(u32, u32)>) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let setpriv = super::sandbox::SETPRIV;
    if !Path::new(setpriv).exists() {
        if run_as.is_some() {
            return Err(std::io::Error::other(format!(
                "{setpriv} is missing: it is needed to start Chromium as an unprivileged user"
            )));
        }
        return Ok(chromium.to_path_buf());
    }
    let quote = |p: &Path| p.to_string_lossy().replace('\'', "'\\''");
    let user = match run_as {
        Some((uid, gid)) => {
            nix::unistd::chown(
                dir,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )?;
            format!("--reuid={uid} --regid={gid} --clear-groups ")
        }
        None => String::new(),
    };
    let home = quote(dir);
    let script = format!(
        "#!/bin/sh\nexport HOME='{home}' XDG_CONFIG_HOME='{home}/.config' XDG_CACHE_HOME='{home}/.cache'\n\
         exec {setpriv} {user}--pdeathsig KILL '{}' \"$@\"\n",
        quote(chromium)
    );
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
            // Only Chromium's processes: other children of ours are waited for by their owners.
            let chromium = stat.comm.starts_with("chrom");
            if u32::try_from(stat.ppid) != Ok(me) || !chromium || Some(pid as u32) == main_pid {
                continue;
            }
            if stat.state == 'Z' {
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

/// (pid, command line, stat) of every process we can read (one that ends meanwhile is
/// skipped).
pub(super) fn processes() -> Vec<(i32, String, procfs::process::Stat)> {
    let Ok(all) = procfs::process::all_processes() else { return Vec::new() };
    all.flatten()
        .filter_map(|p| Some((p.pid(), p.cmdline().ok()?.join(" "), p.stat().ok()?)))
        .collect()
}

/// The processes under `browser` whose command line has `marker`.
pub(super) fn processes_of(browser: u32, marker: &str) -> Vec<(i32, procfs::process::Stat)> {
    let all = processes();
    let parent: std::collections::HashMap<i32, i32> =
        all.iter().map(|(pid, _, stat)| (*pid, stat.ppid)).collect();
    let of_browser = |mut pid: i32| {
        for _ in 0..16 {
            match parent.get(&pid) {
                Some(&ppid) if u32::try_from(ppid) == Ok(browser) => return true,
                Some(&ppid) if ppid > 1 => pid = ppid,
                _ => return false,
            }
        }
        false
    };
    all.into_iter()
        .filter(|(pid, cmdline, _)| cmdline.contains(marker) && of_browser(*pid))
        .map(|(pid, _, stat)| (pid, stat))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_listed_with_its_parent_and_command_line() {
        let me = i32::try_from(std::process::id()).unwrap();
        let (_, cmdline, stat) = processes().into_iter().find(|(pid, _, _)| *pid == me).unwrap();
        assert_eq!(stat.ppid, i32::try_from(std::os::unix::process::parent_id()).unwrap());
        assert!(cmdline.contains("tailpdf_renderer"), "{cmdline}");
        assert!(stat.comm.starts_with("tailpdf_render"), "{}", stat.comm);
    }
}
