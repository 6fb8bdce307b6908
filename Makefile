# The two commands a user needs:
#   make dev    run the whole stack locally
#   make test   run every test (what CI runs)
# Everything else here is a step of those two.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Tools installed by scripts/setup.sh: Node 22 and the npm tools, then cargo's.
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
export PATH := $(CURDIR)/node_modules/.bin:$(CARGO_BIN):$(PATH)
# wrangler stays on this machine: no metrics, no banner, no Cloudflare look-ups.
export WRANGLER_SEND_METRICS := false
export WRANGLER_HIDE_BANNER := true
export CLOUDFLARE_CF_FETCH_ENABLED := false
# worker-build would download these from GitHub; use ours.
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export WASM_OPT_BIN := $(CURDIR)/node_modules/.bin/wasm-opt
export ESBUILD_BIN := $(CURDIR)/node_modules/.bin/esbuild

WASM := wasm32-unknown-unknown

.PHONY: help setup dev demo test lint fmt unit wasm build-edge check-edge bench bench-compare bench-stack bench-edge bench-memory bench-cold-start soak-build clean

help:
	@echo "make dev    run the whole stack locally"
	@echo "make test   install what is missing, then run every check and test"

setup:
	@scripts/setup.sh

dev: setup
	@scripts/dev.sh

# With `make dev` running: an async job with a presigned URL and a verified webhook.
demo: setup
	@scripts/demo.sh

test: setup lint wasm build-edge unit check-edge
	@echo "make test: all checks passed"

fmt:
	cargo fmt --all

lint:
	.venv/bin/hadolint docker/Dockerfile
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo clippy -p tailpdf-shared -p tailpdf-edge --target $(WASM) --locked -- -D warnings

# The contract must build for the Worker's target.
wasm:
	cargo build -p tailpdf-shared --target $(WASM) --locked

# e2e/ runs the built Worker under wrangler dev and the renderer binary this builds alongside.
unit:
	cargo test --workspace --locked

# The Worker's own cargo profile (`edge`: opt-level "z", see Cargo.toml) and wasm-opt -Oz
# (edge/Cargo.toml). worker-build keeps the wasm name section (~170 KiB raw, ~40 KiB gzip);
# strip it here: a panic's stack then shows wasm-function[N], its message is still logged.
# The features are worker-build's own list, so no encoding workerd lacks is written.
WASM_FEATURES := $(addprefix --enable-,mutable-globals sign-ext nontrapping-float-to-int \
	bulk-memory multivalue reference-types exception-handling)
build-edge:
	cd edge && worker-build --profile edge
	wasm-opt --strip-debug --strip-producers $(WASM_FEATURES) \
	  edge/build/index_bg.wasm -o edge/build/index_bg.stripped.wasm
	mv edge/build/index_bg.stripped.wasm edge/build/index_bg.wasm

# The Worker bundles, and wrangler accepts it as a deployment (offline, no account), in both
# configurations. Containers mode's image is not built here (wrangler would build
# docker/Dockerfile from source with Docker, tens of minutes): scripts/image.sh builds its
# runtime stage in make test (e2e/tests/container.rs).
check-edge: build-edge
	wrangler deploy --dry-run --outdir target/edge-dist | grep -E 'Total Upload|dry-run'
	wrangler deploy --dry-run --containers-rollout none -c wrangler.containers.toml \
	  --var EDGE_URL:https://tailpdf.example.workers.dev --outdir target/edge-dist-containers \
	  > target/edge-dist-containers.log
	grep -E 'Total Upload|RendererContainer|containers are available|dry-run' target/edge-dist-containers.log
	grep -q 'env.RENDERERS (RendererContainer)' target/edge-dist-containers.log

clean:
	cargo clean
	rm -rf edge/build

# The renderer's benchmark (figures go into BENCHMARKS.md).
bench: setup
	cargo run --release --locked -p tailpdf-renderer --features testing --bin tailpdf-bench

# The whole local stack against its own renderer (figures go into BENCHMARKS.md):
#   make bench-stack [ARGS="--runs 200x20 --modes push"]
bench-stack: setup build-edge
	cargo build --release --locked -p tailpdf-renderer --bin tailpdf-renderer
	cargo run --release --locked -p tailpdf-e2e --bin tailpdf-bench-stack -- $(ARGS)

# The edge alone under wrangler dev: `POST /pdf` and a job's events, this tree's Worker against
# BASE's (default 39e5cc9, every key of a job in KV), asked in turn (figures go into
# BENCHMARKS.md). BASE's Worker is built in a worktree under target/bench-edge.
#   make bench-edge [BASE=<commit>] [ARGS="--samples 400"]
BENCH_EDGE_BASE := $(or $(BASE),39e5cc9)
bench-edge: setup build-edge
	dir=$(CURDIR)/target/bench-edge/src; \
	  [ -d "$$dir" ] || git worktree add --detach "$$dir" $(BENCH_EDGE_BASE) >/dev/null; \
	  git -C "$$dir" checkout --detach -q $(BENCH_EDGE_BASE); \
	  ln -sfn $(CURDIR)/node_modules "$$dir/node_modules"
	$(MAKE) -C $(CURDIR)/target/bench-edge/src build-edge
	cargo run --release --locked -p tailpdf-e2e --bin tailpdf-bench-edge -- \
	  --base $(CURDIR)/target/bench-edge/src --base-name $(BENCH_EDGE_BASE) $(ARGS)

# The service as a child process (`tailpdf-renderer serve`, release): cold starts, then memory,
# file descriptors and temp files over 10,000 mixed renders (renderer/src/bin/soak.rs).
SOAK := $(or $(CARGO_TARGET_DIR),target)/release/tailpdf-soak
soak-build:
	cargo build --release --locked -p tailpdf-renderer --features testing --bin tailpdf-renderer --bin tailpdf-soak

bench-memory: setup soak-build
	$(SOAK) --csv $(dir $(SOAK))soak.csv --svg $(dir $(SOAK))soak.svg

# Spawn to /readyz, and the first renders after it.
bench-cold-start: setup soak-build
	$(SOAK) --renders 0 --cold-starts 10

# Another commit's engine against this tree's, run alternately: make bench-compare BASE=<commit>
bench-compare: setup
	@scripts/bench-compare.sh $(BASE) $(or $(ROUNDS),3)
