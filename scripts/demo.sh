#!/usr/bin/env bash
# `npm run demo`: installs what it needs (npm dependencies; the Kafka jars on first start), builds,
# then runs scripts/demo.ts: a local Kafka, a live clickstream, the example job and a results viewer.
# Ctrl-C stops it all. Runs on the pinned Node 24 when the one on PATH is too old (scripts/use-node.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing npm dependencies"
  npm ci --no-audit --no-fund
fi
source scripts/use-node.sh
echo "== build"
npm run --silent build
exec node scripts/demo.ts "$@"
