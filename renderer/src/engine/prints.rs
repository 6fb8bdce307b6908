//! The prints under way on one Chromium, and their compositors.
//!
//! Chromium composes a print's PDF in a utility process of its own (the print compositor),
//! where a costly document (large SVG filters, say) spends most of its time. Two things follow:
//! - closing the tab does not stop it: a print that overran its deadline would go on taking a
//!   core for minutes, crowding out every render after it. So each print is registered while
//!   it runs, and when one is abandoned (its deadline, an error), the compositors that can be
//!   no live print's are stopped: those that started before every print still under way (a
//!   print's compositor starts after the print does);
//! - a long print competes for the cores with every short one. A compositor that has run for
//!   more than [`LONG`] runs at the lowest CPU priority: alone it is as fast as before (nothing
//!   else wants the cores), beside cheap renders it no longer doubles their time.
//!
//! Where a build prints in the page process instead (Debian's `chromium-headless-shell`), the
//! same holds of that process: a long print's page process yields the cores too (every thread
//! of it, the main thread that prints and the workers that rasterize, at the lowest priority,
//! for good: its tab is replaced after the print, see [`PageProcess`]), and an abandoned
//! render's page process is ended (`Target::stop`).
//!
//! One watcher task per Chromium does both, and only while a print is long or abandoned.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

/// How often the compositors are looked at while there is something to do.
const SCAN_EVERY: Duration = Duration::from_millis(250);
/// A print running longer than this is long: its compositor yields the cores to others. An
/// invoice prints in under 100 ms; until a costly print is lowered, it takes a core from every
/// render beside it (a second's worth tripled the first invoice of another account's).
pub(crate) const LONG: Duration = Duration::from_millis(500);
/// The watcher's shortest sleep, so that a print becoming long cannot make it spin.
const MIN_SLEEP: Duration = Duration::from_millis(10);
/// The CPU priority of a long print's compositor (the lowest).
const LONG_NICE: i32 = 19;
/// A process's start time is read in clock ticks (10 ms): a compositor counts as older than
/// a print only by more than this.
const MARGIN_SECS: f64 = 0.05;
/// What Chromium's print compositors have on their command line.
const COMPOSITOR: &str = "--utility-sub-type=printing.mojom.PrintCompositor";

/// The prints of one Chromium (its process `browser`).
pub(crate) struct Prints {
    browser: Option<u32>,
    /// Longest a print may still run: the watcher gives up waiting for one after it.
    patience: Duration,
    state: Arc<Mutex<State>>,
}

/// The page process of a tab, as far as the engine could tell which it is (the one that
/// appeared as the tab was made), and whether a long print lowered its priority (its tab must
/// not serve another render then: the priority cannot be raised again without privileges).
#[derive(Debug)]
pub(crate) struct PageProcess {
    pid: i32,
    lowered: AtomicBool,
}

impl PageProcess {
    pub(crate) fn new(pid: i32) -> Arc<Self> {
        Arc::new(Self { pid, lowered: AtomicBool::new(false) })
    }

    pub(crate) fn lowered(&self) -> bool {
        self.lowered.load(Ordering::SeqCst)
    }

    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }
}

/// A print in flight: when it started, when its render began (its page process worked for
/// the render from then), and its tab's page process if known.
struct InFlight {
    started: Instant,
    begun: Instant,
    page: Option<Arc<PageProcess>>,
}

impl InFlight {
    /// Long: past [`LONG`] since its render began. A costly document's page process works
    /// hard from its first layout, before the print starts.
    fn long(&self) -> bool {
        self.begun.elapsed() >= LONG
    }
}

#[derive(Default)]
struct State {
    next: u64,
    in_flight: BTreeMap<u64, InFlight>,
    /// When the last print was abandoned, until none of its compositors can be left.
    abandoned: Option<Instant>,
    watching: bool,
    /// Compositors stopped so far (the engine's count, across its Chromiums).
    stopped: Arc<AtomicU64>,
}

impl State {
    /// Whether the watcher has anything to look at now: an abandoned print, or a long one.
    fn needs_scan(&self) -> bool {
        self.abandoned.is_some() || self.in_flight.values().any(InFlight::long)
    }

    /// How long the watcher may sleep: until a print in flight becomes long, [`SCAN_EVERY`] at
    /// most (so that a long print's process is lowered as soon as it is long).
    fn next_scan(&self) -> Duration {
        let long_in = self.in_flight.values().filter_map(|p| LONG.checked_sub(p.begun.elapsed()));
        long_in.fold(SCAN_EVERY, Duration::min).max(MIN_SLEEP)
    }

    /// Whether the watcher should go on: a print in flight may become long.
    fn needs_watcher(&self) -> bool {
        self.abandoned.is_some() || !self.in_flight.is_empty()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A print under way; dropped before [`Print::done`], it counts as abandoned.
pub(crate) struct Print {
    id: u64,
    done: bool,
    prints: Arc<Mutex<State>>,
    browser: Option<u32>,
    patience: Duration,
}

impl Prints {
    pub(crate) fn new(browser: Option<u32>, patience: Duration, stopped: Arc<AtomicU64>) -> Self {
        let state = State { stopped, ..State::default() };
        Self { browser, patience, state: Arc::new(Mutex::new(state)) }
    }

    /// Registers a print that starts now in the tab whose page process is `page` (if known),
    /// for a render that began at `begun` (now if unknown); the watcher looks at it once it
    /// is long.
    pub(crate) fn start(&self, page: Option<Arc<PageProcess>>, begun: Option<Instant>) -> Print {
        let id = {
            let mut state = lock(&self.state);
            state.next += 1;
            let id = state.next;
            let started = Instant::now();
            let begun = begun.unwrap_or(started).min(started);
            state.in_flight.insert(id, InFlight { started, begun, page });
            id
        };
        watch(&self.state, self.browser, self.patience);
        Print {
            id,
            done: false,
            prints: self.state.clone(),
            browser: self.browser,
            patience: self.patience,
        }
    }
}

impl Print {
    /// The print ended (with a PDF or Chromium's refusal): its compositor ends by itself.
    pub(crate) fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Print {
    fn drop(&mut self) {
        let mut state = lock(&self.prints);
        state.in_flight.remove(&self.id);
        if self.done {
            return;
        }
        state.abandoned = Some(Instant::now());
        drop(state);
        watch(&self.prints, self.browser, self.patience);
    }
}

/// Starts the watcher, unless one runs.
fn watch(state: &Arc<Mutex<State>>, browser: Option<u32>, patience: Duration) {
    let Some(browser) = browser else { return };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    {
        let mut s = lock(state);
        if s.watching {
            return;
        }
        s.watching = true;
    }
    runtime.spawn(watcher(state.clone(), browser, patience));
}

/// While prints are under way or abandoned: every [`SCAN_EVERY`], lowers long prints'
/// compositors and stops abandoned ones' (those of an abandoned print waited for no longer
/// than `patience`). Looks at /proc only when a print is long or abandoned.
async fn watcher(state: Arc<Mutex<State>>, browser: u32, patience: Duration) {
    let mut lowered: HashSet<i32> = HashSet::new();
    // Patience counts from the last abandonment seen.
    let mut seen: Option<Instant> = None;
    let mut since = Instant::now();
    loop {
        let (scan, go_on) = {
            let s = lock(&state);
            (s.needs_scan(), s.needs_watcher())
        };
        if !go_on {
            break;
        }
        if !scan {
            let next = lock(&state).next_scan();
            tokio::time::sleep(next).await;
            continue;
        }
        let scan = tokio::task::spawn_blocking(move || compositors(browser)).await;
        let Ok(Some((now, compositors))) = scan else {
            lock(&state).abandoned = None;
            break;
        };
        let (kills, lower) = {
            let mut state = lock(&state);
            // Instants as seconds since boot, the clock of processes' start times.
            let since_boot = |at: Instant| now - at.elapsed().as_secs_f64();
            let in_flight: Vec<f64> =
                state.in_flight.values().map(|p| since_boot(p.started)).collect();
            let mut kills = Vec::new();
            if let Some(abandoned) = state.abandoned {
                if seen != Some(abandoned) {
                    (seen, since) = (Some(abandoned), Instant::now());
                }
                let (orphans, pending) = orphans(&compositors, &in_flight, since_boot(abandoned));
                state.stopped.fetch_add(orphans.len() as u64, Ordering::Relaxed);
                if !pending || since.elapsed() > patience {
                    state.abandoned = None;
                }
                kills = orphans;
            }
            let long = now - LONG.as_secs_f64();
            let mut lower: Vec<i32> = compositors
                .iter()
                .filter(|(pid, start)| *start < long && !kills.contains(pid))
                .map(|(pid, _)| *pid)
                .filter(|pid| !lowered.contains(pid))
                .collect();
            // The page processes of long prints (where the build prints in them), at every
            // scan: a thread the process starts later begins at the priority of its maker.
            for print in state.in_flight.values().filter(|p| p.long()) {
                if let Some(page) = &print.page {
                    page.lowered.store(true, Ordering::SeqCst);
                    lower.push(page.pid);
                }
            }
            (kills, lower)
        };
        for pid in &kills {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        if !kills.is_empty() {
            tracing::info!(
                stopped = kills.len(),
                "stopped the print compositors of abandoned prints"
            );
        }
        if !lower.is_empty() {
            let pids = lower.clone();
            let _ =
                tokio::task::spawn_blocking(move || pids.into_iter().for_each(lower_threads)).await;
        }
        lowered.extend(lower);
        lowered.retain(|pid| compositors.iter().any(|(p, _)| p == pid));
        let next = lock(&state).next_scan();
        tokio::time::sleep(next).await;
    }
    let mut s = lock(&state);
    s.watching = false;
    // A print that started or was abandoned as this one stopped: watch again.
    if s.needs_watcher() {
        drop(s);
        watch(&state, Some(browser), patience);
    }
}

/// Lowers every thread of process `pid` to [`LONG_NICE`]: Linux keeps a priority per thread,
/// and a page process rasterizes in workers beside its main thread.
fn lower_threads(pid: i32) {
    // Gone meanwhile, or not ours to change: nothing to do.
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return };
    for task in tasks.flatten() {
        let tid = task.file_name().to_str().and_then(|tid| tid.parse::<i32>().ok());
        if let Some(tid) = tid.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::setpriority_process(Some(tid), LONG_NICE);
        }
    }
}

/// Seconds since boot now, and the print compositors of `browser` with their start times (in
/// seconds since boot); `None` if /proc cannot be read.
fn compositors(browser: u32) -> Option<(f64, Vec<(i32, f64)>)> {
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let now: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let found = super::browser::processes_of(browser, COMPOSITOR)
        .into_iter()
        .map(|(pid, stat)| (pid, stat.starttime as f64 / ticks))
        .collect();
    Some((now, found))
}

/// Which of `compositors` (pid, start) to stop, given the starts of the prints in flight and
/// when the last print was abandoned (all in seconds since boot); and whether some that may
/// be the abandoned print's must wait (a print in flight started before them).
fn orphans(compositors: &[(i32, f64)], in_flight: &[f64], abandoned: f64) -> (Vec<i32>, bool) {
    let mut pending = false;
    let mut kills = Vec::new();
    for &(pid, start) in compositors {
        if start > abandoned {
            continue; // a print that began after: not the abandoned one's
        }
        if in_flight.iter().all(|print| start + MARGIN_SECS < *print) {
            kills.push(pid);
        } else {
            pending = true;
        }
    }
    (kills, pending)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_compositors_older_than_every_print_in_flight_are_stopped() {
        // Prints in flight started at 10.0 and 20.0; the last was abandoned at 30.0.
        let compositors = [(1, 5.0), (2, 10.02), (3, 19.0), (4, 20.5), (5, 31.0)];
        let (kills, pending) = orphans(&compositors, &[10.0, 20.0], 30.0);
        // 1 predates every print in flight: no live print's. 2 may be the 10.0 print's (a
        // tick's rounding), 3 and 4 may be the 10.0 print's too: they wait. 5 began later.
        assert_eq!(kills, [1]);
        assert!(pending);
        // Once the prints in flight ended, every compositor that began before the
        // abandonment goes.
        let (kills, pending) = orphans(&compositors, &[], 30.0);
        assert_eq!(kills, [1, 2, 3, 4]);
        assert!(!pending);
        let (kills, pending) = orphans(&compositors, &[30.5], 30.0);
        assert_eq!(kills, [1, 2, 3, 4]);
        assert!(!pending, "a print that began after them cannot own them");
    }

    #[test]
    fn a_finished_print_is_not_abandoned() {
        let prints = Prints::new(None, Duration::from_secs(1), Arc::default());
        let print = prints.start(None, None);
        assert_eq!(lock(&prints.state).in_flight.len(), 1);
        print.done();
        let state = lock(&prints.state);
        assert!(state.in_flight.is_empty() && state.abandoned.is_none());
        drop(state);
        drop(prints.start(None, None));
        assert!(lock(&prints.state).abandoned.is_some(), "dropped unfinished: abandoned");
    }

    /// Set in the environment of [`threads_that_sleep`] when a test runs it as a child.
    const SLEEPER: &str = "TAILPDF_TEST_SLEEPING_THREADS";

    /// Not a test: the child process of the one below, several threads like a page process
    /// (whose raster workers work beside its main thread).
    #[test]
    #[ignore = "a child process of a_long_prints_page_process_yields_the_cores"]
    fn threads_that_sleep() {
        if std::env::var_os(SLEEPER).is_none() {
            return;
        }
        let threads: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(|| std::thread::sleep(Duration::from_secs(30))))
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    }

    /// The nice value of each thread of `pid`, once it has four at least.
    fn nice_of_threads(pid: i32) -> Vec<i64> {
        let process = procfs::process::Process::new(pid).unwrap();
        let started = Instant::now();
        loop {
            let nice: Vec<i64> = process
                .tasks()
                .unwrap()
                .flatten()
                .filter_map(|t| Some(t.stat().ok()?.nice))
                .collect();
            if nice.len() >= 4 || started.elapsed() > Duration::from_secs(10) {
                return nice;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A page process (here a child of this test's, of several threads) whose print runs long
    /// is lowered to the lowest priority, every thread of it, and says so; one whose print
    /// ended in time is not. Only the main thread was, once, and the raster workers of the
    /// shell's page processes went on at full priority beside the renders of others.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_prints_page_process_yields_the_cores() {
        let sleeper = || {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--ignored", "--exact", "engine::prints::tests::threads_that_sleep"])
                .env(SLEEPER, "1")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        };
        let (mut quick, mut long) = (sleeper(), sleeper());
        let pid = |c: &std::process::Child| i32::try_from(c.id()).unwrap();
        let (quick_page, long_page) = (PageProcess::new(pid(&quick)), PageProcess::new(pid(&long)));
        assert!(nice_of_threads(pid(&long)).len() >= 4, "the child has its threads");
        let prints = Prints::new(Some(std::process::id()), Duration::from_secs(5), Arc::default());

        prints.start(Some(quick_page.clone()), None).done();
        let print = prints.start(Some(long_page.clone()), None);
        tokio::time::sleep(LONG + SCAN_EVERY * 3).await;
        assert!(long_page.lowered(), "the long print's page process was not lowered");
        let long_nice = nice_of_threads(pid(&long));
        assert!(long_nice.iter().all(|n| *n == i64::from(LONG_NICE)), "{long_nice:?}");
        assert!(!quick_page.lowered());
        let quick_nice = nice_of_threads(pid(&quick));
        assert!(quick_nice.iter().all(|n| *n == 0), "{quick_nice:?}");
        print.done();
        for child in [&mut quick, &mut long] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The clock starts with the render, not its print: a render already long when its print
    /// starts has its page process lowered at once. A costly document's first layout and
    /// raster (before the print) took a core each from another account's renders for as long
    /// again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_render_long_before_its_print_is_lowered_as_the_print_starts() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let page = PageProcess::new(i32::try_from(child.id()).unwrap());
        let prints = Prints::new(Some(std::process::id()), Duration::from_secs(5), Arc::default());
        let begun = Instant::now().checked_sub(LONG + Duration::from_millis(100)).unwrap();
        let print = prints.start(Some(page.clone()), Some(begun));
        tokio::time::sleep(LONG / 2).await;
        assert!(page.lowered(), "not lowered within half of LONG after its print started");
        print.done();
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
