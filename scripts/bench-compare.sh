#!/usr/bin/env bash
# The engine of another commit against this one, close together on the same machine: each
# one's own `tailpdf-bench`, run alternately ROUNDS times (these machines' speed drifts by 2×
# within an hour, so the runs interleave and the medians are compared).
#
#   make bench-compare BASE=<commit> [ROUNDS=3]
#
# BASE is built in a worktree under target/bench-base (its own Cargo.lock and bench).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
base=${1:?usage: scripts/bench-compare.sh <commit> [rounds]}
rounds=${2:-3}
args=(--renders 40 --throughput-renders 200)

build() { # DIR TARGET_DIR -> path of the bench binary
  local dir=$1 target=$2
  (cd "$dir" && { cargo build --release --locked -q -p tailpdf-renderer --features testing --bin tailpdf-bench 2>/dev/null \
    || cargo build --release --locked -q -p tailpdf-renderer --bin tailpdf-bench; } \
    && echo "$target/release/tailpdf-bench")
}

worktree="$root/target/bench-base/src"
if [ ! -d "$worktree" ]; then
  git worktree add --detach "$worktree" "$base" >/dev/null
fi
git -C "$worktree" checkout --detach -q "$base"
ln -sfn "$root/node_modules" "$worktree/node_modules"
base_bin=$(CARGO_TARGET_DIR="$root/target/bench-base/target" build "$worktree" "$root/target/bench-base/target")
this_bin=$(build "$root" "$root/target")

out=${BENCH_REPORTS:-}
if [ -z "$out" ]; then
out=$(mktemp -d)
for round in $(seq "$rounds"); do
  echo "round $round/$rounds: $base" >&2
  "$base_bin" "${args[@]}" >"$out/base-$round.md"
  echo "round $round/$rounds: this tree" >&2
  "$this_bin" "${args[@]}" --no-peer >"$out/this-$round.md"
done
fi

# "| 2 | 23.4 PDF/s |..." and "| engine p50 / floor p50 | 1.05× |": one figure per run.
figure() { # FILE PATTERN -> the number after it
  sed -n "s#^| $2 | \([0-9.]*\).*#\1#p" "$1" | head -1
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

echo "| | $base | this tree | this / base |"
echo "|---|---|---|---|"
for what in "engine p50 / floor p50" "1" "2" "4"; do
  b=$(for r in $(seq "$rounds"); do figure "$out/base-$r.md" "$what"; done | median)
  t=$(for r in $(seq "$rounds"); do figure "$out/this-$r.md" "$what"; done | median)
  label=$what
  [ "${#what}" -le 1 ] && label="PDF/s, $what tab(s)"
  awk -v l="$label" -v b="$b" -v t="$t" 'BEGIN { printf "| %s (median of the runs) | %s | %s | %.2f |\n", l, b, t, t / b }'
done
echo
echo "Every run's report: $out" >&2
