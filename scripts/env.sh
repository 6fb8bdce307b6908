# Sourced by the scripts that run the stack: the tools scripts/setup.sh installed, and
# wrangler kept on this machine. (The Makefile exports the same for its own recipes.)
root=${root:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$root/node_modules/.bin:$cargo_bin:$PATH"
export WRANGLER_SEND_METRICS=false WRANGLER_HIDE_BANNER=true CLOUDFLARE_CF_FETCH_ENABLED=false
export WASM_BINDGEN_BIN="$cargo_bin/wasm-bindgen"
export WASM_OPT_BIN="$root/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$root/node_modules/.bin/esbuild"
