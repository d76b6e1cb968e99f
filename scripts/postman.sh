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
  exit 77 # skipped, not passed: make test reports it so
fi
# The suite this project was checked against, by its sha256: another
# version of it is named, not run (its expectations may differ).
want=$(cut -d' ' -f1 testdata/realworld-collection.sha256)
got=$(sha256sum "$collection" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "postman: $collection is not the collection this suite was checked against" >&2
  echo "  sha256 $got, expected $want (testdata/realworld-collection.sha256)." >&2
  echo "  To move to it on purpose: sha256sum \"$collection\" > testdata/realworld-collection.sha256, then fix what it finds." >&2
  exit 1
fi
# shellcheck source=scripts/conduit-local.sh
source scripts/conduit-local.sh
u="u$(date +%s)$RANDOM"
"$NEWMAN" run "$collection" \
  --global-var "APIURL=http://127.0.0.1:$port/api" \
  --global-var "USERNAME=$u" --global-var "EMAIL=$u@mail.com" --global-var "PASSWORD=correct-horse-battery-staple" \
  --reporters cli --bail failure
kill -TERM "$pid"
wait "$pid"
echo "postman: conduit stopped cleanly"
