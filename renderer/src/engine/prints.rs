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
//! One watcher task per Chromium does both, and only while a print is long or abandoned.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
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
/// A print running longer than this is long: its compositor yields the cores to others.
pub(crate) const LONG: Duration = Duration::from_secs(1);
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

#[derive(Default)]
struct State {
    next: u64,
    in_flight: BTreeMap<u64, Instant>,
    /// When the last print was abandoned, until none of its compositors can be left.
    abandoned: Option<Instant>,
    watching: bool,
    /// Compositors stopped so far (the engine's count, across its Chromiums).
    stopped: Arc<AtomicU64>,
}

impl State {
    /// Whether the watcher has anything to look at now: an abandoned print, or a long one.
    fn needs_scan(&self) -> bool {
        self.abandoned.is_some() || self.in_flight.values().any(|t| t.elapsed() >= LONG)
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

    /// Registers a print that starts now; the watcher looks at it once it is long.
    pub(crate) fn start(&self) -> Print {
        let id = {
            let mut state = lock(&self.state);
            state.next += 1;
            let id = state.next;
            state.in_flight.insert(id, Instant::now());
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
            tokio::time::sleep(SCAN_EVERY).await;
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
            let in_flight: Vec<f64> = state.in_flight.values().map(|t| since_boot(*t)).collect();
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
            let lower: Vec<i32> = compositors
                .iter()
                .filter(|(pid, start)| *start < long && !kills.contains(pid))
                .map(|(pid, _)| *pid)
                .filter(|pid| !lowered.contains(pid))
                .collect();
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
        for pid in lower {
            let Some(process) = rustix::process::Pid::from_raw(pid) else { continue };
            // Gone meanwhile, or not ours to change: nothing to do.
            let _ = rustix::process::setpriority_process(Some(process), LONG_NICE);
            lowered.insert(pid);
        }
        lowered.retain(|pid| compositors.iter().any(|(p, _)| p == pid));
        tokio::time::sleep(SCAN_EVERY).await;
    }
    let mut s = lock(&state);
    s.watching = false;
    // A print that started or was abandoned as this one stopped: watch again.
    if s.needs_watcher() {
        drop(s);
        watch(&state, Some(browser), patience);
    }
}

/// Seconds since boot now, and the print compositors of `browser` with their start times (in
/// seconds since boot); `None` if /proc cannot be read.
fn compositors(browser: u32) -> Option<(f64, Vec<(i32, f64)>)> {
    let uptime = std::fs::read_to_string("/proc/uptime").ok()?;
    let now: f64 = uptime.split_whitespace().next()?.parse().ok()?;
    let ticks = procfs::ticks_per_second() as f64;
    let all = super::browser::processes();
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
    let found = all
        .iter()
        .filter(|(pid, cmdline, _)| cmdline.contains(COMPOSITOR) && of_browser(*pid))
        .map(|(pid, _, stat)| (*pid, stat.starttime as f64 / ticks))
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
        let print = prints.start();
        assert_eq!(lock(&prints.state).in_flight.len(), 1);
        print.done();
        let state = lock(&prints.state);
        assert!(state.in_flight.is_empty() && state.abandoned.is_none());
        drop(state);
        drop(prints.start());
        assert!(lock(&prints.state).abandoned.is_some(), "dropped unfinished: abandoned");
    }
}
