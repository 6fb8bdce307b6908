//! The renderer's container image under podman, as scripts/image.sh builds it: storage and
//! configuration under target/containers, no daemon, no registry.

use std::{path::PathBuf, process::Command, time::Instant};

use crate::root;

/// The image `scripts/image.sh test` tags: the runtime stage with the renderer `make test`
/// compiled.
pub const TEST_IMAGE: &str = "localhost/tailpdf-renderer:test";

fn dir() -> PathBuf {
    root().join("target/containers")
}

/// The environment that points podman (and podman-compose) at the storage and configuration
/// scripts/image.sh set up.
pub fn podman_env() -> [(&'static str, PathBuf); 3] {
    [
        ("CONTAINERS_CONF", dir().join("containers.conf")),
        ("CONTAINERS_STORAGE_CONF", dir().join("storage.conf")),
        ("TMPDIR", dir().join("tmp")),
    ]
}

/// `podman` in that environment.
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.envs(podman_env());
    cmd
}

/// Runs podman with `args`; its stdout, trimmed, or a panic with its stderr.
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Builds [`TEST_IMAGE`] (and the stand-in base, if missing); prints what scripts/image.sh
/// says about it (build time, size). The build's own output goes to `log`.
pub fn build_test_image(log: &std::path::Path) -> std::time::Duration {
    let started = Instant::now();
    let out = Command::new(root().join("scripts/image.sh")).arg("test").output().unwrap();
    std::fs::write(log, [&out.stdout[..], &out.stderr[..]].concat()).unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    for line in said.lines().filter(|l| l.contains("image:")) {
        eprintln!("{line}");
    }
    assert!(out.status.success(), "scripts/image.sh test failed: see {}", log.display());
    started.elapsed()
}
