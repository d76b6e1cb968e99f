#!/usr/bin/env bash
# Makes sure the programs `make test` (or another target) needs are here.
# Missing ones are installed with apt-get when this user can (root, or
# passwordless sudo); otherwise it stops at once with the exact command.
#
#   scripts/deps.sh test      everything make test needs (make test-release
#                             and make lighthouse name theirs)
#   scripts/deps.sh <cmd>...  just those commands
set -euo pipefail

# command → Debian package
declare -A pkg=(
  [cloud-init]=cloud-init
  [shellcheck]=shellcheck
  [qemu-aarch64]=qemu-user
  [python3]=python3
  [curl]=curl
  [npm]=npm
  [chromium]=chromium
  [ip]=iproute2
  [nft]=nftables
)

# file → Debian package: the fonts the browser suites draw with (the font
# sets of app/cmd/conduit/fonts_test.go, which checks this table names them).
# a|b: the first package apt knows (Debian 13 moved DejaVu's monospace faces
# to fonts-dejavu-mono).
declare -A file=(
  [/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf]=fonts-dejavu-core
  [/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf]=fonts-dejavu-core
  [/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf]=fonts-dejavu-core
  [/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf]=fonts-dejavu-core
  [/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf]="fonts-dejavu-mono|fonts-dejavu-core"
  [/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf]="fonts-dejavu-mono|fonts-dejavu-core"
  [/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf]=fonts-liberation
  [/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf]=fonts-liberation
  [/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf]=fonts-liberation
  [/usr/share/fonts/truetype/liberation/LiberationSerif-Bold.ttf]=fonts-liberation
  [/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf]=fonts-liberation
  [/usr/share/fonts/truetype/liberation/LiberationMono-Bold.ttf]=fonts-liberation
)

# pick prints the first of a|b|… that apt knows (the last when it knows none).
pick() {
  local alt
  IFS='|' read -ra alts <<<"$1"
  for alt in "${alts[@]}"; do
    if apt-cache show "$alt" >/dev/null 2>&1; then echo "$alt"; return; fi
  done
  echo "${alts[-1]}"
}
# Where those files are looked for (tests point it at a folder of their own).
root=${DEPS_ROOT:-}

want=("$@")
files=()
if [ "${#want[@]}" -eq 0 ] || [ "${want[0]}" = test ]; then
  want=(cloud-init shellcheck curl npm chromium)
  files=("${!file[@]}")
  # As root, the twin's Go tests make network namespaces and nftables.
  if [ "$(id -u)" -eq 0 ]; then want+=(ip nft); fi
fi

missing=()
for f in "${files[@]}"; do
  [ -e "$root$f" ] && continue
  p=${file[$f]}
  if [[ $p == *"|"* ]]; then p=$(pick "$p"); fi
  [[ " ${missing[*]} " == *" $p "* ]] || missing+=("$p")
done
for cmd in "${want[@]}"; do
  if [ "$cmd" = qemu-aarch64 ] && command -v qemu-aarch64-static >/dev/null; then continue; fi
  # The browser tests take Debian's chromium or Google Chrome (hosted runners have Chrome).
  if [ "$cmd" = chromium ] && { command -v google-chrome || command -v google-chrome-stable; } >/dev/null; then continue; fi
  command -v "$cmd" >/dev/null || missing+=("${pkg[$cmd]:-$cmd}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

install="apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
if ! command -v apt-get >/dev/null; then
  echo "deps: missing ${missing[*]}, and this machine has no apt-get: install them with your package manager" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  echo "deps: missing ${missing[*]}. Install them, then run make again:" >&2
  echo "  sudo sh -c '$install'" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
