#!/usr/bin/env bash
# `make dev`: the whole stack on this machine, at the addresses of the README's table.
# Until the parts exist it says which are missing and starts nothing.
set -euo pipefail
cat <<'MSG'
make dev will run the whole stack on this machine:
  edge      wrangler dev --local   http://127.0.0.1:8787   (Miniflare KV and Queues, push mode)
  renderer  tailpdf-renderer serve http://127.0.0.1:3000   (Debian Chromium)
  bucket    s3s-fs                 http://127.0.0.1:9000   (bucket "pdfs")

Not built yet, so nothing was started:
  - the edge API: POST /pdf, GET /jobs/{id}, webhooks (issue #5),
  - the stack wiring, demo and dev key seeding (issue #6).
The renderer exists: `cargo run -p tailpdf-renderer -- render --help` and `-- serve --help`.
The toolchain for all of it is installed (scripts/setup.sh); `make test` runs what exists.
MSG
exit 1
