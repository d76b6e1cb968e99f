# Sourced by scripts that need a real conduit: builds it, starts `conduit
# local` on a loopback port the kernel picks (no port is chosen first and
# bound later: nothing can take it in between) with its data in a temporary
# directory, waits until it serves, and sets tmp, pid and port; it is
# stopped (SIGTERM) and the directory removed when the script exits. Extra
# arguments go to conduit.
# shellcheck shell=bash
tmp=$(mktemp -d)
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
go build -o "$tmp/conduit" ./app/cmd/conduit
"$tmp/conduit" local --web-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 --data-dir "$tmp/data" "$@" \
  >"$tmp/out" 2>"$tmp/log" &
pid=$!
port=
for _ in $(seq 600); do
  port=$(sed -n 's|^conduit local: serving http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$tmp/out" 2>/dev/null)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "conduit local exited before serving:" >&2; cat "$tmp/log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { echo "conduit local did not serve within 60 s:" >&2; tail -20 "$tmp/log" >&2; exit 1; }
