#!/usr/bin/env bash
# Runs nmap's smtp-open-relay script against every receive connector of the demo config (a node
# of its own, on a temp data folder). Exit 0: no connector is an open relay; 1: one is, or a
# connector could not be tested; 2: the node or nmap could not be started.
set -euo pipefail
PORT_OFFSET="${PORT_OFFSET:-30000}"
# shellcheck source=lib/demo-node.sh
source "$(dirname "$0")/lib/demo-node.sh"
need nmap nmap
start_demo_node

# '+' runs the script although the ports are not 25/465/587; it tries plaintext, then TLS (the
# implicit-TLS port, after its 10 s plaintext timeout). The relay attempts use addresses outside
# example.test. One nmap run for all connectors: the scripts run in parallel.
out="$(nmap -Pn -n -p "$DEFAULT_PORT,$CLIENT_PORT,$CLIENT_TLS_PORT" --script +smtp-open-relay \
  --script-args smtp-open-relay.domain=nmap.test,smtp-open-relay.ip=127.0.0.1 127.0.0.1 2>&1)" || true

status=0
for target in "Default:$DEFAULT_PORT" "Client:$CLIENT_PORT" "ClientTls:$CLIENT_TLS_PORT"; do
  name="${target%%:*}"
  port="${target##*:}"
  # The script's lines under this port's line, up to the next port.
  section="$(printf '%s\n' "$out" | awk -v p="$port/tcp" '$1 == p { on = 1; next } /^[0-9]+\/tcp/ { on = 0 } on')"
  verdict="$(printf '%s\n' "$section" | sed -n 's/^|[_ ]smtp-open-relay: *//p' | head -1)"
  if printf '%s\n' "$section" | grep -q 'Server is an open relay'; then
    echo "FAIL $name (127.0.0.1:$port): open relay:"
    printf '%s\n' "$section"
    status=1
  elif printf '%s\n' "$verdict" | grep -Eq "doesn't seem to be an open relay|isn't an open relay"; then
    echo "ok   $name (127.0.0.1:$port): $verdict"
  else
    echo "FAIL $name (127.0.0.1:$port): smtp-open-relay gave no verdict"
    status=1
  fi
done
[ "$status" = 0 ] || printf '%s\n' "$out"
exit "$status"
