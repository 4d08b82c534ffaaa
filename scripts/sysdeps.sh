#!/usr/bin/env bash
# The system packages a make target needs, by group: installed with apt-get when missing, then each checked
# against the oldest version Forge is tested with. Nothing here runs for `make demo`.
#
#   scripts/sysdeps.sh stack   # make up: Prometheus (+ promtool), Alertmanager (+ amtool), the Pushgateway
#   scripts/sysdeps.sh test    # make test: the stack, headless Chromium, wrk, PostgreSQL, bubblewrap (pod sandbox)
#   scripts/sysdeps.sh bench   # make bench: wrk
set -euo pipefail

# binary -> Debian package, and the oldest version that works (Prometheus 2.x's classic pages, Alertmanager's
# v2 API and `amtool config routes test`, Chromium's --headless=new, PostgreSQL's initdb --auth).
declare -A PACKAGE=([prometheus]=prometheus [promtool]=prometheus [prometheus-alertmanager]=prometheus-alertmanager
  [amtool]=prometheus-alertmanager [prometheus-pushgateway]=prometheus-pushgateway [chromium]=chromium [wrk]=wrk
  [initdb]=postgresql [bwrap]=bubblewrap)
declare -A OLDEST=([prometheus]=2.30 [promtool]=2.30 [prometheus-alertmanager]=0.24 [amtool]=0.24
  [prometheus-pushgateway]=1.4 [chromium]=110 [wrk]=4.1 [initdb]=13 [bwrap]=0.5)
declare -A GROUP=([stack]="prometheus promtool prometheus-alertmanager amtool prometheus-pushgateway"
  [bench]="wrk")
GROUP[test]="${GROUP[stack]} chromium wrk initdb bwrap"

locate() {  # PostgreSQL keeps its server binaries off PATH, under its major version
  if [ "$1" = initdb ]; then ls -1 /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1; return; fi
  command -v "$1" || true
}

version_of() {  # the first dotted number the binary prints about itself
  local out
  case "$1" in
    wrk) out=$("$2" -v 2>&1 || true) ;;
    *) out=$("$2" --version 2>&1 || true) ;;
  esac
  grep -oE '[0-9]+(\.[0-9]+)+' <<<"$out" | head -n 1
}

wanted=()
for group in "$@"; do
  [ -n "${GROUP[$group]:-}" ] || { echo "sysdeps: unknown group '$group' (stack, test, bench)" >&2; exit 2; }
  wanted+=(${GROUP[$group]})
done

missing=()
for bin in "${wanted[@]}"; do
  [ -n "$(locate "$bin")" ] || missing+=("${PACKAGE[$bin]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "forge: installing system packages: $packages"
  command -v apt-get >/dev/null || { echo "forge: apt-get not found: install $packages yourself" >&2; exit 1; }
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086  # one word per package
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi

for bin in $(printf '%s\n' "${wanted[@]}" | sort -u); do
  path=$(locate "$bin")
  [ -n "$path" ] || { echo "forge: $bin is still missing after apt-get (package ${PACKAGE[$bin]})" >&2; exit 1; }
  have=$(version_of "$bin" "$path")
  oldest=${OLDEST[$bin]}
  if [ -z "$have" ] || [ "$(printf '%s\n%s\n' "$oldest" "$have" | sort -V | head -n 1)" != "$oldest" ]; then
    echo "forge: $path is version '${have:-unknown}'; Forge needs $bin >= $oldest (package ${PACKAGE[$bin]})" >&2
    exit 1
  fi
done
