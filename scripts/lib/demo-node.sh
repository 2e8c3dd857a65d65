# Sourced by the security scripts: runs a node on the demo config (config/ferrymail.yaml, or
# FERRYMAIL_CONFIG: a variant of it, as the tests use) with its state in a temp folder and its ports moved by PORT_OFFSET, so it clashes neither with
# `npm start` nor with another script. Sets NODE_PID, WORK and the ports; cleans up on exit.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NODE_BIN="$ROOT/node_modules/.bin/node"
[ -x "$NODE_BIN" ] || NODE_BIN="$(command -v node)"

: "${PORT_OFFSET:?set PORT_OFFSET before sourcing demo-node.sh}"
DEFAULT_PORT=$((2525 + PORT_OFFSET))
CLIENT_PORT=$((5587 + PORT_OFFSET))
CLIENT_TLS_PORT=$((4465 + PORT_OFFSET))
ADMIN_PORT=$((8025 + PORT_OFFSET))

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferrymail-security.XXXXXX")"
NODE_PID=""

stop_demo_node() {
  if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
    kill -TERM "$NODE_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NODE_PID" 2>/dev/null || true
  fi
  NODE_PID=""
  rm -rf "$WORK"
}
trap stop_demo_node EXIT
trap 'exit 130' INT TERM

# Installs a Debian package when its command is missing (apt-get update first), or fails.
need() {
  local command="$1" package="$2"
  command -v "$command" >/dev/null 2>&1 && return 0
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing $package (for $command)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package") >/dev/null 2>&1 || true
  fi
  command -v "$command" >/dev/null 2>&1 || { echo "error: $command is missing (Debian package $package)" >&2; exit 2; }
}

start_demo_node() {
  sed -e "s|^  dataDir: .*|  dataDir: $WORK/data|" \
      -e "s|^  logLevel: .*|  logLevel: info|" \
      -e "s|127.0.0.1:2525|127.0.0.1:$DEFAULT_PORT|" \
      -e "s|127.0.0.1:5587|127.0.0.1:$CLIENT_PORT|" \
      -e "s|127.0.0.1:4465|127.0.0.1:$CLIENT_TLS_PORT|" \
      -e "s|127.0.0.1:8025|127.0.0.1:$ADMIN_PORT|" \
      "${FERRYMAIL_CONFIG:-$ROOT/config/ferrymail.yaml}" > "$WORK/ferrymail.yaml"
  "$NODE_BIN" "$ROOT/src/cli/main.ts" start --config "$WORK/ferrymail.yaml" > "$WORK/node.log" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 100); do
    grep -q 'ferrymail node started' "$WORK/node.log" 2>/dev/null && return 0
    kill -0 "$NODE_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "error: the node did not start:" >&2
  cat "$WORK/node.log" >&2
  exit 2
}
