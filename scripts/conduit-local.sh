# Sourced by scripts that need a real conduit: builds it, starts `conduit
# local` on a free loopback port with its data in a temporary directory, and
# sets tmp, pid and port; it is stopped (SIGTERM) and the directory removed
# when the script exits. Extra arguments go to conduit.
# shellcheck shell=bash
tmp=$(mktemp -d)
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/conduit" ./app/cmd/conduit
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tmp/conduit" local --web-addr "127.0.0.1:$port" --admin-addr 127.0.0.1:0 --data-dir "$tmp/data" "$@" \
  >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do
  grep -q "serving" "$tmp/out" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/log"; exit 1; }
  sleep 0.1
done
