//! What the benchmarks (`tailpdf-bench`, `tailpdf-soak`) read of the machine: the commit
//! measured, a process's tree, and the CPU time its parts used, from /proc.

use std::collections::{BTreeMap, HashMap};

/// The commit measured, and whether the tree had changes on top of it: the heading of every
/// benchmark report.
pub fn revision() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit =
        git(&["log", "-1", "--format=%h %cs"]).unwrap_or_else(|| "unknown revision".into());
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(changes) if !changes.is_empty() => format!("{commit} with uncommitted changes"),
        _ => commit,
    }
}

/// A process's parent and its CPU time (user + system, its own threads), in clock ticks.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()?;
    Some((u32::try_from(stat.ppid).ok()?, stat.utime + stat.stime))
}

/// `pid` and all its descendants (`pid` first).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for process in procfs::process::all_processes().into_iter().flatten().flatten() {
        let Ok(stat) = process.stat() else { continue };
        if let (Ok(p), Ok(ppid)) = (u32::try_from(stat.pid), u32::try_from(stat.ppid)) {
            children.entry(ppid).or_default().push(p);
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        tree.extend(children.get(&tree[i]).into_iter().flatten());
        i += 1;
    }
    tree
}

/// What a process of the tree is: the root (the engine's or the peer's own process), or a
/// Chromium process by its `--type` (the browser has none).
fn kind(pid: u32, root: u32) -> String {
    if pid == root {
        return String::from("host");
    }
    // Chromium rewrites its command line into one string: its arguments are split by spaces
    // there, not NULs.
    let cmdline = i32::try_from(pid)
        .ok()
        .and_then(|pid| procfs::process::Process::new(pid).ok()?.cmdline().ok())
        .unwrap_or_default()
        .join(" ");
    let kind = cmdline.split(' ').find_map(|arg| arg.strip_prefix("--type="));
    match kind {
        Some("renderer") => String::from("renderer"),
        Some("gpu-process") => String::from("gpu"),
        Some(_) => String::from("other"),
        None => String::from("browser"),
    }
}

/// CPU seconds so far of `root` and each of its descendants, summed by kind: "host" (root
/// itself), "browser", "renderer", "gpu", "other" (zygotes, utilities). A process that ended
/// meanwhile is missed: read before and after a run in which none ends.
pub fn cpu_by_kind(root: u32) -> BTreeMap<String, f64> {
    let ticks_per_s = procfs::ticks_per_second() as f64;
    let mut by_kind = BTreeMap::new();
    for pid in process_tree(root) {
        if let Some((_, ticks)) = stat(pid) {
            *by_kind.entry(kind(pid, root)).or_insert(0.0) += ticks as f64 / ticks_per_s;
        }
    }
    by_kind
}

/// CPU seconds by kind between two readings of [`cpu_by_kind`].
pub fn cpu_between(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0))).collect()
}

/// Proportional set size of a process, in KiB (0 once it has ended).
pub fn pss_kib(pid: u32) -> u64 {
    let process = i32::try_from(pid).ok().and_then(|pid| procfs::process::Process::new(pid).ok());
    let rollup = process.and_then(|p| p.smaps_rollup().ok());
    let pss = rollup
        .and_then(|r| r.memory_map_rollup.iter().find_map(|m| m.extension.map.get("Pss").copied()));
    pss.unwrap_or(0) / 1024
}

/// Proportional set size of `root` and its descendants, in KiB.
pub fn tree_pss_kib(root: u32) -> u64 {
    process_tree(root).into_iter().map(pss_kib).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_the_root_of_its_tree_and_its_busy_time_counts() {
        assert_eq!(process_tree(std::process::id())[0], std::process::id());
        let before = cpu_by_kind(std::process::id());
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(200) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spent = cpu_between(&before, &cpu_by_kind(std::process::id()));
        assert!(spent["host"] >= 0.1, "{spent:?}");
    }
}
