#!/usr/bin/env bash
# Runs testssl (Debian's testssl.sh) against the TLS of the demo config's receive connectors (a
# node of its own, on a temp data folder): STARTTLS on Default and Client, implicit TLS on
# ClientTls. Exit 1 when testssl rates anything HIGH or CRITICAL, except the findings that only
# say the demo's self-signed certificate is not trusted; 2 when the node or testssl cannot start.
# Takes a few minutes. The JSON findings are kept in $TESTSSL_OUT (default: a temp folder).
set -euo pipefail
PORT_OFFSET="${PORT_OFFSET:-20000}"
# shellcheck source=lib/demo-node.sh
source "$(dirname "$0")/lib/demo-node.sh"
need testssl testssl.sh
start_demo_node
OUT="${TESTSSL_OUT:-$WORK/testssl}"
mkdir -p "$OUT"

# One testssl per connector, in parallel (each takes minutes, mostly testssl's own CPU).
pids=()
for target in "Default:$DEFAULT_PORT:starttls" "Client:$CLIENT_PORT:starttls" "ClientTls:$CLIENT_TLS_PORT:implicit"; do
  IFS=: read -r name port kind <<<"$target"
  rm -f "$OUT/$name.json"
  args=(--quiet --color 0 --warnings batch --sneaky --jsonfile "$OUT/$name.json")
  [ "$kind" = starttls ] && args+=(-t smtp)
  testssl "${args[@]}" "127.0.0.1:$port" > "$OUT/$name.txt" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}" || true

status=0
for target in "Default:$DEFAULT_PORT:starttls" "Client:$CLIENT_PORT:starttls" "ClientTls:$CLIENT_TLS_PORT:implicit"; do
  IFS=: read -r name port kind <<<"$target"
  json="$OUT/$name.json"
  echo "== $name (127.0.0.1:$port, $kind)"
  if [ ! -s "$json" ]; then
    echo "FAIL $name: testssl wrote no findings:"
    tail -20 "$OUT/$name.txt"
    status=1
    continue
  fi
  # The demo's certificate is self-signed: findings about its trust (chain, revocation
  # information, CA pointers) are expected; nothing else may be HIGH or CRITICAL.
  "$NODE_BIN" -e '
    const findings = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const trustOnly = /^(cert_chain_of_trust|cert_trust|cert_revocation|cert_caIssuers|cert_crlDistributionPoints|cert_ocspURL|OCSP_stapling)/;
    const severe = (f) => /^(HIGH|CRITICAL)$/.test(f.severity);
    const counts = {};
    for (const f of findings) counts[f.severity] = (counts[f.severity] ?? 0) + 1;
    const rating = (id) => findings.find((f) => f.id === id)?.finding;
    console.log(`   severities: ${JSON.stringify(counts)}`);
    for (const id of ["overall_grade", "protocol_negotiated", "cipher_negotiated", "cipher_order"])
      if (rating(id)) console.log(`   ${id}: ${rating(id)}`);
    for (const f of findings.filter((f) => !severe(f) && !/^(OK|INFO)$/.test(f.severity)))
      console.log(`   ${f.severity} ${f.id}: ${f.finding}`);
    for (const f of findings.filter((f) => severe(f) && trustOnly.test(f.id)))
      console.log(`   ignored, self-signed demo certificate: ${f.severity} ${f.id}: ${f.finding}`);
    const bad = findings.filter((f) => severe(f) && !trustOnly.test(f.id));
    for (const f of bad) console.log(`   FINDING ${f.severity} ${f.id}: ${f.finding}`);
    process.exit(bad.length > 0 ? 1 : 0);
  ' "$json" || status=1
done
if [ "$status" = 0 ]; then
  echo "testssl: no HIGH or CRITICAL finding beyond the self-signed certificate"
else
  echo "testssl: see the findings above (full output: $OUT, kept when TESTSSL_OUT is set)"
fi
exit "$status"
