#!/usr/bin/env bash
# Rebuilds the agent desktop's SIP stack: JsSIP (pinned in web/agent/package-lock.json) bundled
# by esbuild into crates/server/web/jssip.min.js, with its SHA-256 beside it. The bundle is
# committed and embedded in the crest binary, so neither the build nor CI runs npm; run this
# only to move JsSIP to another version (then commit the three files).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/web/agent"
npm ci --no-audit --no-fund
./node_modules/.bin/esbuild entry.js --bundle --minify --format=iife --target=es2020 \
  --legal-comments=eof --outfile="$root/crates/server/web/jssip.min.js"
cd "$root/crates/server/web"
sha256sum jssip.min.js > jssip.min.js.sha256
cat jssip.min.js.sha256
