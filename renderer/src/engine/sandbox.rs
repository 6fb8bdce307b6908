//! How Chromium runs: with its sandbox or not (`--sandbox`), and never as root.
//!
//! Debian's Chromium sandboxes its page processes in user, PID and network namespaces. It
//! refuses that as root, so a renderer running as root starts Chromium as an unprivileged user
//! (`--chromium-user`, `nobody` by default) instead, which also keeps a compromised page
//! process from being root even where the sandbox cannot work. Under Docker's default seccomp
//! profile (or a kernel that restricts unprivileged user namespaces) the namespaces cannot be
//! made and Chromium would fail to start: `auto` probes once, as the user Chromium will run as,
//! and turns the sandbox off, with a warning, where it could not work.

use std::{path::Path, process::Stdio, time::Duration};

use crate::{config::SandboxMode, error::RenderError};

/// util-linux's `unshare` and `setpriv`, part of every Debian.
const UNSHARE: &str = "/usr/bin/unshare";
pub(crate) const SETPRIV: &str = "/usr/bin/setpriv";
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How Chromium is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) sandbox: bool,
    /// The (uid, gid) Chromium runs as, when not ours.
    pub(crate) run_as: Option<(u32, u32)>,
}

/// The decision itself: `on` and `off` are obeyed; `auto` needs working user namespaces for
/// the user Chromium runs as, and that user not to be root.
pub(crate) fn decide(mode: SandboxMode, chromium_is_root: bool, userns_ok: bool) -> bool {
    match mode {
        SandboxMode::On => true,
        SandboxMode::Off => false,
        SandboxMode::Auto => !chromium_is_root && userns_ok,
    }
}

/// Decides for this process: as root, Chromium runs as `chromium_user`; user namespaces are
/// probed (as that user) only when `auto` depends on them. Logs why the sandbox is off.
pub(crate) async fn resolve(mode: SandboxMode, chromium_user: &str) -> Result<Plan, RenderError> {
    let run_as = if nix::unistd::geteuid().is_root() { Some(user(chromium_user)?) } else { None };
    let chromium_is_root = match run_as {
        Some((uid, _)) => uid == 0,
        None => nix::unistd::geteuid().is_root(),
    };
    let probe = if mode == SandboxMode::Auto && !chromium_is_root {
        probe_userns(Path::new(UNSHARE), run_as, PROBE_TIMEOUT).await
    } else {
        Ok(())
    };
    let sandbox = decide(mode, chromium_is_root, probe.is_ok());
    let uid = run_as.map(|(u, _)| u);
    match (mode, sandbox) {
        (SandboxMode::On, _) if chromium_is_root => tracing::warn!(
            "--sandbox on with Chromium as root: Chromium refuses its sandbox as root and will \
             not start; set --chromium-user to an unprivileged user"
        ),
        (_, true) => tracing::info!(chromium_uid = uid, "chromium sandbox on"),
        (SandboxMode::Off, false) => {
            tracing::info!(chromium_uid = uid, "chromium sandbox off (--sandbox off)")
        }
        (_, false) if chromium_is_root => {
            tracing::warn!("chromium sandbox off: Chromium runs as root (--chromium-user)")
        }
        (_, false) => tracing::warn!(
            reason = probe.err().unwrap_or_default(),
            chromium_uid = uid,
            "chromium sandbox off: unprivileged user namespaces are unavailable, or chroot in \
             them is not allowed. To enable it, allow them (under Docker: a seccomp profile \
             that permits unshare/clone with CLONE_NEWUSER, or --security-opt \
             seccomp=unconfined) and keep CAP_SYS_CHROOT in the bounding set (do not drop \
             ALL capabilities), or pass --sandbox on to fail instead"
        ),
    }
    Ok(Plan { sandbox, run_as })
}

/// `--chromium-user`: a name from the user database or a numeric uid (its gid the same).
fn user(spec: &str) -> Result<(u32, u32), RenderError> {
    if let Ok(uid) = spec.parse::<u32>() {
        return Ok((uid, uid));
    }
    match nix::unistd::User::from_name(spec) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        _ => Err(RenderError::Browser(format!(
            "--chromium-user {spec}: no such user (Chromium never runs as root; name an \
             unprivileged user or uid)"
        ))),
    }
}

/// Creates the namespaces Chromium's sandbox needs (user, PID, network) in a child process
/// running as `run_as`, and chroots inside them as Chromium's zygote does first: a container
/// without capabilities (`--cap-drop ALL`) allows the namespaces but not the chroot, and
/// Chromium would then fail to start.
async fn probe_userns(
    unshare: &Path,
    run_as: Option<(u32, u32)>,
    timeout: Duration,
) -> Result<(), String> {
    let mut command = match run_as {
        Some((uid, gid)) => {
            let mut c = tokio::process::Command::new(SETPRIV);
            c.args([&format!("--reuid={uid}"), &format!("--regid={gid}"), "--clear-groups"]);
            c.arg(unshare);
            c
        }
        None => tokio::process::Command::new(unshare),
    };
    let child = command
        .args(["--user", "--map-root-user", "--pid", "--net", "--fork"])
        .args(["/usr/sbin/chroot", "/", "/bin/true"])
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
            "{} --user ... chroot failed ({}): {}",
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
                assert!(decide(On, root, userns));
                assert!(!decide(Off, root, userns));
            }
        }
        assert!(decide(Auto, false, true));
        assert!(!decide(Auto, true, true));
        assert!(!decide(Auto, false, false));
        assert!(!decide(Auto, true, false));
    }

    #[test]
    fn chromium_users() {
        assert_eq!(user("65534").unwrap(), (65534, 65534));
        assert_eq!(user("root").unwrap(), (0, 0));
        assert!(user("no-such-user-here").is_err());
    }

    #[tokio::test]
    async fn a_missing_unshare_is_a_failed_probe() {
        let err =
            probe_userns(Path::new("/nonexistent/unshare"), None, PROBE_TIMEOUT).await.unwrap_err();
        assert!(err.contains("cannot run"), "{err}");
    }

    #[tokio::test]
    async fn a_failing_unshare_is_a_failed_probe() {
        assert!(probe_userns(Path::new("/bin/false"), None, PROBE_TIMEOUT).await.is_err());
    }
}
