#!/usr/bin/env bash
# Runs a command with another Node.js line first on PATH, fetched from the npm registry's
# node-linux-<arch> package into a cache directory (the one registry these machines reach):
#
#   scripts/with-node.sh 24 npm test
#
# The agent's native parts (node-pty, zeromq, native/fs-creds) use Node-API, so the same
# node_modules serve every line. .ci/run uses it to test under the image's Node (24) as well as the
# machine's. Cache: ${SANDBOX_AGENT_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandbox-agent/node}.
set -euo pipefail

major=${1:?usage: with-node.sh MAJOR COMMAND [ARGS...]}
shift
(($# > 0)) || { echo "with-node.sh: no command given" >&2; exit 2; }

case $(uname -m) in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "with-node.sh: no Node.js package for $(uname -m)" >&2; exit 1 ;;
esac
cache=${SANDBOX_AGENT_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandbox-agent/node}/$major
bin=$cache/node_modules/node-linux-$arch/bin
if [[ ! -x $bin/node ]]; then
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-save --no-audit --no-fund --loglevel=error "node-linux-$arch@$major" >&2
fi
# Native builds (npm run build:native) use this line's own headers.
export npm_config_nodedir=$cache/node_modules/node-linux-$arch
export PATH=$bin:$PATH
echo "with-node.sh: $(node --version) for: $*" >&2
exec "$@"
