#!/usr/bin/env bash
# `make dev`: the whole stack on this machine, at the addresses of the README's table:
#   edge      wrangler dev --local   http://127.0.0.1:8787   (Miniflare KV and Queues, push mode)
#   renderer  tailpdf-renderer serve http://127.0.0.1:3000   (Debian Chromium)
#   bucket    s3s-fs                 http://127.0.0.1:9000   (bucket "pdfs")
#   webhooks  a verifying receiver   http://127.0.0.1:8790/hook (prints each delivery here)
# with the dev API key seeded. Ctrl-C stops everything it started.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=env.sh
. scripts/env.sh
state="$root/.dev"
mkdir -p "$state/s3/pdfs" "$state/fonts" "$state/wrangler"

EDGE_PORT=8787
RENDERER_PORT=3000
S3_PORT=9000
HOOK_PORT=8790
API_KEY=dev-api-key
ACCOUNT=dev
WEBHOOK_SECRET=dev-webhook-secret
INTERNAL_SECRET=dev-internal-secret
ADMIN_SECRET=dev-admin-secret

say() { printf '\033[1mdev:\033[0m %s\n' "$*"; }

for port in $EDGE_PORT $RENDERER_PORT $S3_PORT $HOOK_PORT; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "port $port is already in use: stop what listens there first"; exit 1
  fi
done

say "building the renderer and the Worker"
# dev-fast (Cargo.toml): optimized, without release's LTO, so that the quickstart shows the
# renderer's real speed and a rebuild after a change still takes seconds.
cargo build --locked --profile dev-fast -p tailpdf-renderer --bin tailpdf-renderer --example presign --example webhook_receiver
cargo build --locked --profile dev-fast -p tailpdf-admin
make -s build-edge >/dev/null 2>&1 || { say "building the Worker failed: run make build-edge to see why"; exit 1; }

# The same tool an operator uses (docs/DEPLOY.md, "API keys"), on wrangler dev's storage.
admin() { target/dev-fast/tailpdf-admin --persist-to "$state/wrangler" "$@"; }
hash=$(printf '%s' "$API_KEY" | sha256sum | cut -d' ' -f1)
if admin key list --account "$ACCOUNT" | grep -q "^$hash "; then
  say "dev API key: $API_KEY (account $ACCOUNT)"
else
  say "creating the dev API key ($API_KEY → account $ACCOUNT)"
  admin key create --account "$ACCOUNT" --key "$API_KEY" --webhook-secret "$WEBHOOK_SECRET" \
    >/dev/null 2>"$state/admin.log" || { say "creating the dev API key failed: $state/admin.log"; exit 1; }
fi

pids=()
stop() {
  trap - INT TERM EXIT
  say "stopping"
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# Each part in its own process group, so that stopping it stops its children too.
setsid s3s-fs --host 127.0.0.1 --port $S3_PORT --access-key dev-access-key --secret-key dev-secret-key \
  "$state/s3" >"$state/s3s-fs.log" 2>&1 &
pids+=($!)
TAILPDF_INTERNAL_SECRET=$INTERNAL_SECRET setsid target/dev-fast/tailpdf-renderer serve \
  --listen 127.0.0.1:$RENDERER_PORT --edge-url http://127.0.0.1:$EDGE_PORT --allow-loopback \
  --font-cache-dir "$state/fonts" >"$state/renderer.log" 2>&1 &
pids+=($!)
setsid wrangler dev --local --ip 127.0.0.1 --port $EDGE_PORT --show-interactive-dev-session=false \
  --persist-to "$state/wrangler" --var "INTERNAL_SECRET:$INTERNAL_SECRET" --var "ADMIN_SECRET:$ADMIN_SECRET" --var ALLOW_LOOPBACK:true \
  --var "RENDERER_URL:http://127.0.0.1:$RENDERER_PORT" >"$state/edge.log" 2>&1 &
pids+=($!)
# The receiver's lines (one per delivery, with both signatures checked) go to this terminal.
setsid target/dev-fast/examples/webhook_receiver $HOOK_PORT "$WEBHOOK_SECRET" > >(tee -a "$state/webhooks.log") 2>&1 &
pids+=($!)

wait_for() {
  local name=$1 url=$2 i
  for i in $(seq 1 120); do
    if curl -s -o /dev/null -m 2 "$url"; then return 0; fi
    sleep 0.5
  done
  say "$name did not start; its log: $state/${3}.log"; exit 1
}
wait_for "the bucket" "http://127.0.0.1:$S3_PORT/" s3s-fs
wait_for "the renderer" "http://127.0.0.1:$RENDERER_PORT/readyz" renderer
wait_for "the edge" "http://127.0.0.1:$EDGE_PORT/" edge
wait_for "the webhook receiver" "http://127.0.0.1:$HOOK_PORT/" webhooks

cat <<MSG

tailpdf is running (logs in .dev/*.log):
  edge      http://127.0.0.1:$EDGE_PORT     API key: $API_KEY
  renderer  http://127.0.0.1:$RENDERER_PORT
  bucket    http://127.0.0.1:$S3_PORT     s3s-fs, bucket "pdfs", dev-access-key / dev-secret-key
  webhooks  http://127.0.0.1:$HOOK_PORT/hook  verifies both signatures with $WEBHOOK_SECRET

A PDF in the response (sync):

  curl -s http://127.0.0.1:$EDGE_PORT/pdf -H 'X-API-Key: $API_KEY' -H 'Content-Type: application/json' \\
    -d '{"content":"<div class=\\"p-8\\"><h1 class=\\"text-3xl font-bold text-teal-700\\">Hello</h1></div>","pdfOptions":{"format":"A4","printBackground":true}}' \\
    -o hello.pdf

A background job into the local bucket, with a signed webhook (printed here when it arrives):

  url=\$(target/dev-fast/examples/presign quickstart/hello.pdf)
  curl -s http://127.0.0.1:$EDGE_PORT/pdf -H 'X-API-Key: $API_KEY' -H 'Content-Type: application/json' \\
    -d '{"content":"<h1 class=\\"p-8 text-3xl font-bold\\">Hello</h1>","async":true,"upload_url":"'"\$url"'","webhook_url":"http://127.0.0.1:$HOOK_PORT/hook"}'

The PDF lands in .dev/s3/pdfs/quickstart/hello.pdf; follow the job with GET /jobs/{job_id}.

Ctrl-C stops everything.
MSG
wait
