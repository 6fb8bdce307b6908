//! A server as a child process in its own process group, with its output in a log file.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{kill, killpg, Signal},
    unistd::Pid,
};

pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `cmd` in a new process group, stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Self {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} could not start ({:?}): {e}", cmd.get_program()));
        Self { name: name.to_owned(), child, log: log.to_owned() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` holds, or panics with the log once `limit` has passed or the
    /// process has exited.
    pub async fn wait_until(&mut self, limit: Duration, mut ready: impl AsyncFnMut() -> bool) {
        let started = Instant::now();
        loop {
            if ready().await {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before it was ready:\n{}", self.name, self.log());
            }
            if started.elapsed() > limit {
                panic!("{} was not ready within {limit:?}:\n{}", self.name, self.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL to the process itself only: what a crash or the OOM killer does. Whatever it
    /// started must go by itself (the renderer's Chromium does, through PDEATHSIG).
    pub fn kill_hard(&mut self) {
        kill(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL).unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM to the group, SIGKILL after a grace period.
    pub fn stop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        let _ = killpg(group, Signal::SIGTERM);
        let started = Instant::now();
        while self.child.try_wait().ok().flatten().is_none()
            && started.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// (ppid, state) of a process, if it exists.
fn stat(pid: u32) -> Option<(u32, char)> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()?;
    Some((u32::try_from(stat.ppid).ok()?, stat.state))
}

/// Whether `pid` runs (exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state)| state != 'Z')
}

/// Every running (non-zombie) process below `pid`.
pub fn descendants(pid: u32) -> Vec<u32> {
    tree(pid).into_iter().skip(1).filter(|p| alive(*p)).collect()
}

/// `root` and its descendants, as /proc lists them now.
pub fn tree(root: u32) -> Vec<u32> {
    let Ok(all) = procfs::process::all_processes() else { return vec![root] };
    let parents: Vec<(u32, u32)> = all
        .flatten()
        .filter_map(|p| {
            let stat = p.stat().ok()?;
            Some((u32::try_from(stat.pid).ok()?, u32::try_from(stat.ppid).ok()?))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(parents.iter().filter(|(_, ppid)| *ppid == parent).map(|(pid, _)| *pid));
        i += 1;
    }
    found
}

/// CPU seconds (user and system) `pids` have used, with what their reaped children used:
/// over a whole process tree, every process counted once, ended ones included.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks = procfs::ticks_per_second() as f64;
    pids.iter()
        .filter_map(|pid| {
            procfs::process::Process::new(i32::try_from(*pid).ok()?).ok()?.stat().ok()
        })
        .map(|s| (s.utime + s.stime) as f64 + (s.cutime + s.cstime) as f64)
        .sum::<f64>()
        / ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_a_running_descendant_until_it_is_reaped() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        assert!(alive(pid));
        assert!(descendants(std::process::id()).contains(&pid));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!alive(pid));
        assert!(!descendants(std::process::id()).contains(&pid));
    }
}
