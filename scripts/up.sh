#!/usr/bin/env bash
# One command to a running local Steward: installs nats-server and PostgreSQL (Debian packages)
# when missing, installs npm dependencies, builds, and runs `steward up` with the demo fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
need=()
command -v nats-server >/dev/null 2>&1 || [ -n "${NATS_URL:-}" ] || need+=(nats-server)
# steward up makes its NATS TLS certificates with openssl (without it NATS runs without TLS, and up says so).
command -v openssl >/dev/null 2>&1 || [ -n "${NATS_URL:-}" ] || need+=(openssl)
if [ -z "${DATABASE_URL:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages) ..."
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Node.js older than 22 (past its end of life): run on the line in .node-version, fetched once from the npm registry.
if [ "$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)" -lt 22 ] && [ "${STEWARD_NODE:-}" != system ]; then
  source scripts/use-node.sh
  steward_use_node
fi
[ -d node_modules ] || npm ci --no-audit --no-fund
npm run -s build
exec node cli/dist/main.js up "$@"
