#!/usr/bin/env bash
# Runs the official RealWorld Postman suite (newman) through the whole local
# path: web (WAF on) → api → embedded FerretDB, on free loopback ports, then
# stops the server with SIGTERM. Fails on any failed assertion.
set -euo pipefail
cd "$(dirname "$0")/.."
NEWMAN=${NEWMAN:-node_modules/.bin/newman}
# The suite is RealWorld's, not this project's: it is looked for where the
# README says (REALWORLD, default ../shared/realworld), and skipped, saying
# how to get it, when it is not there.
collection="${REALWORLD:-../shared/realworld}/Conduit.postman_collection.json"
if [ ! -f "$collection" ]; then
  echo "postman: SKIPPED — the RealWorld Postman collection is not at $collection."
  echo "  Get it: git clone --depth 1 https://github.com/gothinkster/realworld /tmp/realworld &&"
  echo "          mkdir -p ../shared/realworld && cp /tmp/realworld/api/Conduit.postman_collection.json ../shared/realworld/"
  echo "  (or run make with REALWORLD=<the directory holding it>)"
  exit 0
fi
tmp=$(mktemp -d)
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/conduit" ./app/cmd/conduit
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tmp/conduit" local --web-addr "127.0.0.1:$port" --admin-addr 127.0.0.1:0 --data-dir "$tmp/data" \
  >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do
  grep -q "serving" "$tmp/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/log"; exit 1; }
  sleep 0.1
done
u="u$(date +%s)$RANDOM"
"$NEWMAN" run "$collection" \
  --global-var "APIURL=http://127.0.0.1:$port/api" \
  --global-var "USERNAME=$u" --global-var "EMAIL=$u@mail.com" --global-var "PASSWORD=correct-horse-battery-staple" \
  --reporters cli --bail failure
kill -TERM "$pid"
wait "$pid"
echo "postman: conduit stopped cleanly"
