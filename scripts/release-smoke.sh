#!/usr/bin/env bash
# Smoke-tests the release the stacks deploy, dist/conduit-linux-arm64, on
# this (x86-64) machine under qemu-user: `conduit version`, then the whole
# local path (FerretDB → api → web with the WAF) answers, blocks an attack,
# and stops cleanly on SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=dist/conduit-linux-arm64
[ -x "$bin" ] || { echo "release-smoke: $bin missing: run make build" >&2; exit 1; }
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
[ -n "$qemu" ] || { echo "release-smoke: qemu-aarch64 missing: apt-get install qemu-user" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "release-smoke: $("$qemu" "$bin" version) ($(sha256sum "$bin" | cut -c1-12))"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$qemu" "$bin" local --web-addr "127.0.0.1:$port" --admin-addr 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 300); do
  grep -q serving "$tmp/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/log" >&2; exit 1; }
  sleep 0.2
done
base="http://127.0.0.1:$port"
tags=$(curl -fsS -m 10 "$base/api/tags")
[ "$tags" = '{"tags":[]}' ] || { echo "release-smoke: GET /api/tags = $tags" >&2; exit 1; }
code=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$base/api/articles?tag=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
[ "$code" = 403 ] || { echo "release-smoke: attack got $code, want 403" >&2; exit 1; }
kill -TERM "$pid"
wait "$pid"
pid=
echo "release-smoke: arm64 release serves, blocks attacks and stops cleanly"
