#!/usr/bin/env bash
# `make demo`: with `make dev` running, submits examples/invoice.html as a background job with
# a presigned URL to the local bucket and a webhook to make dev's receiver, then shows the job,
# where the PDF landed and whether the webhook's signatures verified.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=env.sh
. scripts/env.sh

EDGE=http://127.0.0.1:8787
HOOK=http://127.0.0.1:8790/hook
say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }

curl -s -o /dev/null -m 2 "$EDGE/" || { say "the stack is not running: start \`make dev\` in another terminal first"; exit 1; }
key="demo/invoice-$(date +%s).pdf"
upload_url=$(target/dev-fast/examples/presign "$key")
hooks=.dev/webhooks.log

body=$(jq -n --rawfile content examples/invoice.html --arg upload "$upload_url" \
  --arg hook "$HOOK" \
  '{content: $content, pdfOptions: {format: "A4", printBackground: true}, async: true, upload_url: $upload, webhook_url: $hook}')
say "POST /pdf (async)"
accepted=$(curl -s "$EDGE/pdf" -H 'X-API-Key: dev-api-key' -H 'Content-Type: application/json' -d "$body")
echo "$accepted"
id=$(echo "$accepted" | jq -r .job_id)
[ "$id" != null ] || { say "the job was not accepted"; exit 1; }

for _ in $(seq 1 120); do
  job=$(curl -s "$EDGE/jobs/$id" -H 'X-API-Key: dev-api-key')
  case $(echo "$job" | jq -r .status) in completed|failed) break ;; esac
  sleep 0.5
done
say "GET /jobs/$id"
echo "$job" | jq .
file=".dev/s3/pdfs/$key"
if [ -f "$file" ]; then
  say "the PDF landed in the bucket: s3://pdfs/$key ($file, $(stat -c %s "$file") bytes)"
fi
delivery=""
for _ in $(seq 1 40); do
  delivery=$(grep -F "\"$id\"" "$hooks" 2>/dev/null | tail -n 1 || true)
  [ -n "$delivery" ] && break
  sleep 0.5
done
if [ -n "$delivery" ]; then
  say "webhook received by make dev's receiver:"
  echo "$delivery" | jq '{event, webhook_id, x_tailpdf_signature_valid, standard_webhooks_signature_valid}'
else
  say "no webhook arrived within 20 s (see .dev/edge.log)"
fi
