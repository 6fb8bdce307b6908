//! Whether Chromium runs with its sandbox (`--sandbox`).
//!
//! Debian's Chromium sandboxes its renderers in user, PID and network namespaces. Chromium
//! refuses that as root, and under Docker's default seccomp profile (or a kernel that restricts
//! unprivileged user namespaces) it cannot create them and fails to start. `auto` probes once
//! and turns the sandbox off, with a warning, where it could not work.

use std::{path::Path, process::Stdio, time::Duration};

use crate::config::SandboxMode;

/// util-linux's `unshare`, part of every Debian.
const UNSHARE: &str = "/usr/bin/unshare";
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The decision itself: `on` and `off` are obeyed; `auto` needs a non-root user and working
/// user namespaces.
pub(crate) fn use_sandbox(mode: SandboxMode, is_root: bool, userns_ok: bool) -> bool {
    match mode {
        SandboxMode::On => true,
        SandboxMode::Off => false,
        SandboxMode::Auto => !is_root && userns_ok,
    }
}

/// Decides for this process, probing user namespaces only when `auto` depends on them, and
/// logs why the sandbox is off.
pub(crate) async fn resolve(mode: SandboxMode) -> bool {
    let is_root = nix::unistd::geteuid().is_root();
    let probe = if mode == SandboxMode::Auto && !is_root {
        probe_userns(Path::new(UNSHARE), PROBE_TIMEOUT).await
    } else {
        Ok(())
    };
    let on = use_sandbox(mode, is_root, probe.is_ok());
    match (mode, on) {
        (SandboxMode::On, _) if is_root => tracing::warn!(
            "--sandbox on as root: Chromium refuses its sandbox as root and will not start; \
             run as a non-root user or use --sandbox auto"
        ),
        (_, true) => tracing::info!("chromium sandbox on"),
        (SandboxMode::Off, false) => tracing::info!("chromium sandbox off (--sandbox off)"),
        (_, false) if is_root => tracing::info!("chromium sandbox off: running as root"),
        (_, false) => tracing::warn!(
            reason = probe.err().unwrap_or_default(),
            "chromium sandbox off: unprivileged user namespaces are unavailable. To enable it, \
             allow them (under Docker: a seccomp profile that permits unshare/clone with \
             CLONE_NEWUSER, or --security-opt seccomp=unconfined) or pass --sandbox on to \
             fail instead"
        ),
    }
    on
}

/// Creates the namespaces Chromium's sandbox needs (user, PID, network) in a child process.
async fn probe_userns(unshare: &Path, timeout: Duration) -> Result<(), String> {
    let child = tokio::process::Command::new(unshare)
        .args(["--user", "--pid", "--net", "--fork", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", unshare.display()))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(format!("{} did not finish within {timeout:?}", unshare.display())),
        Ok(Err(e)) => Err(format!("{}: {e}", unshare.display())),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "{} --user failed ({}): {}",
            unshare.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision() {
        use SandboxMode::{Auto, Off, On};
        for root in [false, true] {
            for userns in [false, true] {
                assert!(use_sandbox(On, root, userns));
                assert!(!use_sandbox(Off, root, userns));
            }
        }
        assert!(use_sandbox(Auto, false, true));
        assert!(!use_sandbox(Auto, true, true));
        assert!(!use_sandbox(Auto, false, false));
        assert!(!use_sandbox(Auto, true, false));
    }

    #[tokio::test]
    async fn a_missing_unshare_is_a_failed_probe() {
        let err = probe_userns(Path::new("/nonexistent/unshare"), PROBE_TIMEOUT).await.unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_unshare_is_a_failed_probe() {
        assert!(probe_userns(Path::new("/bin/false"), PROBE_TIMEOUT).await.is_err());
    }
}
