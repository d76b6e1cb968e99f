#!/usr/bin/env bash
# Smoke-tests the release the stacks deploy, dist/conduit-linux-arm64, on
# this (x86-64) machine under qemu-user, in the roles it is deployed in:
# `conduit version`, then its api (on a database this machine's conduit
# serves, FerretDB as in the twin) and its web tier (the WAF, then the
# proxy to that api) answer, a sign-up is written through both, an attack
# is blocked, and both stop cleanly on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=dist/conduit-linux-arm64
[ -x "$bin" ] || { echo "release-smoke: $bin missing: run make build" >&2; exit 1; }
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
[ -n "$qemu" ] || { echo "release-smoke: qemu-aarch64 missing: apt-get install qemu-user" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# listening waits until the program writing $1 says "<name> listening on
# http://<addr>" (every address here is one the kernel picked: :0) and
# prints <addr>; a program that exits first fails the script with its log.
listening() {
  local out=$1 name=$2 pid=$3 log=$4 addr=
  for _ in $(seq 600); do
    addr=$(sed -n "s|^$name listening on http://\([0-9.:]*\)$|\1|p" "$out" 2>/dev/null | head -1)
    [ -n "$addr" ] && { echo "$addr"; return; }
    kill -0 "$pid" 2>/dev/null || { echo "release-smoke: $name exited:" >&2; cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  echo "release-smoke: $name did not listen within 60 s:" >&2; tail -20 "$log" >&2; exit 1
}

echo "release-smoke: $("$qemu" "$bin" version) ($(sha256sum "$bin" | cut -c1-12))"

# The database: this machine's conduit, its FerretDB on a Unix socket in
# its 0700 data directory (the release carries no database of its own).
go build -o "$tmp/conduit-host" ./app/cmd/conduit
"$tmp/conduit-host" local --web-addr 127.0.0.1:0 --api-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --data-dir "$tmp/db" \
  >"$tmp/db.out" 2>"$tmp/db.log" &
pids+=($!)
for _ in $(seq 600); do grep -q "serving" "$tmp/db.out" 2>/dev/null && break; sleep 0.1; done
sock="$tmp/db/ferretdb/mongodb.sock"
[ -S "$sock" ] || { echo "release-smoke: no database socket at $sock" >&2; cat "$tmp/db.log" >&2; exit 1; }
uri="mongodb://$(printf %s "$sock" | sed 's|/|%2F|g')/"

env -i PATH="$PATH" "$qemu" "$bin" api --api-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --mongo-uri "$uri" \
  --jwt-secret "$(head -c 48 /dev/urandom | base64 -w0)" >"$tmp/api.out" 2>"$tmp/api.log" &
api_pid=$!
pids+=("$api_pid")
api=$(listening "$tmp/api.out" api "$api_pid" "$tmp/api.log")
env -i PATH="$PATH" "$qemu" "$bin" web --web-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --upstream "http://$api" \
  >"$tmp/web.out" 2>"$tmp/web.log" &
web_pid=$!
pids+=("$web_pid")
web=$(listening "$tmp/web.out" web "$web_pid" "$tmp/web.log")
base="http://$web"

tags=$(curl -fsS -m 20 --noproxy '*' "$base/api/tags")
[ "$tags" = '{"tags":[]}' ] || { echo "release-smoke: GET /api/tags = $tags" >&2; exit 1; }
code=$(curl -s -m 20 --noproxy '*' -o "$tmp/signup" -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"user":{"username":"smoke","email":"smoke@example.com","password":"correct-horse-battery-staple"}}' "$base/api/users")
[ "$code" = 201 ] || { echo "release-smoke: POST /api/users = $code: $(cat "$tmp/signup")" >&2; cat "$tmp/api.log" >&2; exit 1; }
code=$(curl -s -m 20 --noproxy '*' -o /dev/null -w '%{http_code}' "$base/api/articles?tag=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
[ "$code" = 403 ] || { echo "release-smoke: attack got $code, want 403" >&2; exit 1; }
for p in "$web_pid" "$api_pid"; do
  kill -TERM "$p"
  wait "$p" || { echo "release-smoke: a role did not stop cleanly (exit $?)" >&2; cat "$tmp/web.log" "$tmp/api.log" >&2; exit 1; }
done
pids=("${pids[0]}")
echo "release-smoke: the arm64 release's web and api serve, write through to the database, block attacks and stop cleanly"
