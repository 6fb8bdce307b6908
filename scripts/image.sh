#!/usr/bin/env bash
# The renderer's container image with podman/buildah, no Docker daemon and no registry: what
# `make test` builds and runs (e2e/tests/container.rs calls this script).
#
#   scripts/image.sh base      stand-in base images, made offline from Debian's packages
#                              (debootstrap) under the names docker/Dockerfile uses; only when
#                              missing
#   scripts/image.sh test      the runtime stage with the renderer `make test` compiled
#                              (target/debug/tailpdf-renderer), as localhost/tailpdf-renderer:test
#   scripts/image.sh compose   the images docker/compose.yaml names, the same way: the
#                              renderer above, and s3s-fs from the binary setup.sh installed
#   scripts/image.sh env       the environment podman needs here, as `export` lines
#
# Everything lives under target/containers (storage, configuration, the base's rootfs), so a
# `make clean` starts over. See docker/README.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=versions.env
. scripts/versions.env

dir="$root/target/containers"
say() { printf '\033[1mimage:\033[0m %s\n' "$*" >&2; }

# Storage and runtime settings of our own: runc with cgroupfs (crun refuses this machine's
# hybrid cgroups), and explicit ulimits (the machine withholds raising RLIMIT_NOFILE).
configure() {
  mkdir -p "$dir/storage" "$dir/run" "$dir/tmp"
  cat >"$dir/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
  cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$dir/tmp"
EOF
  export CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf" \
    TMPDIR="$dir/tmp" BUILDAH_FORMAT=docker
}

# debian:bookworm-slim as Docker Hub has it, near enough: minbase, no apt lists, no docs, the
# same apt sources (plain http, as in the real image).
base_debian() {
  local name=docker.io/library/debian:bookworm-slim rootfs="$dir/rootfs-bookworm"
  if podman image exists "$name"; then
    say "$name: ok (cached)"
    return
  fi
  say "making $name with debootstrap (about 2 minutes)"
  local started=$SECONDS
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$dir/debootstrap.log" 2>&1 \
    || { tail -20 "$dir/debootstrap.log"; exit 1; }
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
  tar --numeric-owner -C "$rootfs" -cf - . \
    | podman import --change 'CMD ["bash"]' - "$name" >/dev/null
  rm -rf "$rootfs"
  say "$name made in $((SECONDS - started)) s"
}

# The runtime stage (`renderer`) with the binary make test compiled, stripped of debug info.
# The context holds that one file, so nothing else of the tree is sent.
test_image() {
  local binary="$root/target/debug/tailpdf-renderer" context="$dir/context"
  [ -x "$binary" ] || { say "$binary is missing: cargo build -p tailpdf-renderer"; exit 1; }
  rm -rf "$context" && mkdir -p "$context"
  objcopy --strip-debug "$binary" "$context/tailpdf-renderer"
  local started=$SECONDS
  podman build --pull=never --format docker -f docker/Dockerfile --target renderer \
    --build-arg RENDERER_BINARY=prebuilt -t localhost/tailpdf-renderer:test "$context" >&2
  local size
  size=$(podman image inspect localhost/tailpdf-renderer:test --format '{{.Size}}')
  say "localhost/tailpdf-renderer:test built in $((SECONDS - started)) s, $((size / 1000000)) MB"
}

# compose.yaml's images, so that `podman-compose up` finds them and builds nothing: the test
# image under the renderer's name, and the s3s-fs stage with the s3s-fs setup.sh built.
compose_images() {
  podman tag localhost/tailpdf-renderer:test localhost/tailpdf-renderer:dev
  local binary="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" context="$dir/s3s-context"
  [ -x "$binary" ] || { say "$binary is missing: scripts/setup.sh cargo-tools"; exit 1; }
  rm -rf "$context" && mkdir -p "$context"
  cp "$binary" "$context/s3s-fs"
  local started=$SECONDS
  podman build --pull=never --format docker -f docker/Dockerfile --target s3s-fs \
    --build-arg S3S_FS_BINARY=s3s-fs-prebuilt -t "localhost/tailpdf-s3s-fs:$S3S_FS_VERSION" \
    "$context" >&2
  say "localhost/tailpdf-s3s-fs:$S3S_FS_VERSION built in $((SECONDS - started)) s"
}

configure
case "${1:-}" in
  base) base_debian ;;
  test) base_debian; test_image ;;
  compose) base_debian; test_image; compose_images ;;
  env)
    printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q TMPDIR=%q BUILDAH_FORMAT=docker\n' \
      "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF" "$TMPDIR"
    ;;
  *) say "usage: scripts/image.sh base|test|compose|env"; exit 2 ;;
esac
