//! Bundles the Tailwind compiler (assets/tailwind-compiler.js + the pinned `tailwindcss` npm
//! package) with esbuild into OUT_DIR, where the engine embeds it. Both come from the
//! workspace's node_modules, which `scripts/setup.sh` installs from package-lock.json.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.parent().expect("renderer/ sits in the workspace").to_path_buf();
    let entry = manifest.join("assets/tailwind-compiler.js");
    let esbuild = root.join("node_modules/.bin/esbuild");
    let out =
        PathBuf::from(env::var("OUT_DIR").expect("set by cargo")).join("tailwind-compiler.js");

    println!("cargo::rerun-if-changed={}", entry.display());
    println!("cargo::rerun-if-changed={}", root.join("package-lock.json").display());

    if !esbuild.exists() {
        panic!(
            "{} is missing: run `scripts/setup.sh node` (or `make setup`) to install the pinned \
             npm tools before building the renderer",
            esbuild.display()
        );
    }
    let status = Command::new(&esbuild)
        .current_dir(&root)
        .arg(&entry)
        .args(["--bundle", "--format=iife", "--platform=browser", "--target=es2022"])
        .args(["--loader:.css=text", "--minify", "--legal-comments=eof", "--log-level=warning"])
        .arg(format!("--outfile={}", out.display()))
        .status()
        .expect("esbuild runs");
    assert!(status.success(), "esbuild could not bundle {}", entry.display());
}
