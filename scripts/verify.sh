#!/usr/bin/env bash
# The one command that proves the project: installs what it needs (npm dependencies, the Kafka jars),
# lints, type-checks, builds, and runs the whole suite against a real Kafka broker. All of it runs on a
# Node new enough for the project, the pinned Node 24 when the one on PATH is older (scripts/use-node.sh).
# Extra arguments go to Jest (e.g. `npm run verify -- test/windows`).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "== installing npm dependencies"
  npm ci --no-audit --no-fund
fi
source scripts/use-node.sh
bash scripts/system-deps.sh
echo "== fetching Kafka jars (cached in the Maven repository after the first run)"
node scripts/kafka/local-broker.ts fetch
echo "== lint"
npm run --silent lint
echo "== type-check"
npm run --silent typecheck
echo "== build"
npm run --silent build
echo "== tests"
npm test --silent -- --json --outputFile=.jest-results.json "$@"
