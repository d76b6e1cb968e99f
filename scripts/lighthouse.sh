#!/usr/bin/env bash
# make lighthouse: Lighthouse 12 (scripts/lighthouse/package.json) on the
# site's screens — home, an article, a profile and the forms, signed out and
# in — against conduit local on a free loopback port, in Debian's chromium
# (CHROME_PATH; nothing downloads a browser). Prints each page's scores and
# fails below the targets: accessibility ≥ 95, SEO ≥ 90, performance and
# best practices ≥ 95. Desktop preset and mobile (the default) both.
set -euo pipefail
cd "$(dirname "$0")/.."
export PUPPETEER_SKIP_DOWNLOAD=1
bash scripts/deps.sh python3 npm chromium
LH=scripts/lighthouse/node_modules/.bin/lighthouse
if [ ! -x "$LH" ]; then
  echo "lighthouse: installing Lighthouse 12 into scripts/lighthouse (npm ci, about 200 MB)…"
  (cd scripts/lighthouse && npm ci --no-audit --no-fund >/dev/null)
fi
CHROME_PATH=${CHROME_PATH:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[ -n "$CHROME_PATH" ] || { echo "lighthouse: no Chromium: apt-get install chromium"; exit 1; }
export CHROME_PATH

# shellcheck source=scripts/conduit-local.sh
source scripts/conduit-local.sh
base="http://127.0.0.1:$port"

# Content to look at: two people, articles with markdown, a comment.
token=$(python3 scripts/lighthouse/seed.py "$base")

pages=(
  "home|/|"
  "article|/article/how-to-train-your-dragon|"
  "profile|/profile/jake|"
  "sign in|/login|"
  "sign up|/register|"
  "home, signed in|/?feed=global|in"
  "editor|/editor|in"
  "settings|/settings|in"
)
fail=0
printf '%-18s %-8s %13s %13s %14s %5s\n' page device performance accessibility best-practices seo
for p in "${pages[@]}"; do
  IFS='|' read -r name path auth <<<"$p"
  headers='{}'
  [ -n "$auth" ] && headers="{\"Cookie\":\"conduit_session=$token; conduit_user=jake\"}"
  for device in mobile desktop; do
    preset=()
    [ "$device" = desktop ] && preset=(--preset=desktop)
    out="$tmp/lh.json"
    "$LH" "$base$path" "${preset[@]}" --quiet --output=json --output-path="$out" \
      --only-categories=performance,accessibility,best-practices,seo \
      --chrome-flags="--headless=new --no-sandbox --disable-gpu" \
      --extra-headers="$headers" >/dev/null 2>"$tmp/lh.err" || { cat "$tmp/lh.err"; exit 1; }
    read -r perf a11y bp seo < <(node -e '
      const r = require(process.argv[1]);
      const s = k => Math.round(r.categories[k].score * 100);
      console.log(s("performance"), s("accessibility"), s("best-practices"), s("seo"));' "$out")
    mark=""
    if [ "$perf" -lt 95 ] || [ "$a11y" -lt 95 ] || [ "$bp" -lt 95 ] || [ "$seo" -lt 90 ]; then
      mark="  ← below target"; fail=1
      node -e '
        const r = require(process.argv[1]);
        for (const [k, c] of Object.entries(r.categories)) for (const a of c.auditRefs) {
          const x = r.audits[a.id];
          if (a.weight > 0 && x.score !== null && x.score < 1) console.log("    " + k + ": " + x.id + " — " + x.title);
        }' "$out"
    fi
    printf '%-18s %-8s %13s %13s %14s %5s%s\n' "$name" "$device" "$perf" "$a11y" "$bp" "$seo" "$mark"
  done
done
[ "$fail" = 0 ] && echo "lighthouse: every page meets the targets (performance, accessibility, best practices ≥ 95; SEO ≥ 90)"
exit "$fail"
