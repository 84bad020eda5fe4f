#!/usr/bin/env bash
# Debian packages the test suite uses when it can: redis-server (shared sessions), chromium
# (the browser test), nginx (a reverse proxy in front of the embedded FHIR server) and faketime (the
# suite's second and third runs with the clock moved ahead, and partner servers with their own clock). Installed only when missing and when we are root with apt-get; otherwise the
# tests that need them are skipped and say why. Never fails the build.
set -u
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/sbin/nginx ] || need+=(nginx)
command -v faketime >/dev/null 2>&1 || need+=(faketime)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: cannot install ${need[*]} (not root or no apt-get); tests needing them will be skipped" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || echo "system-deps: apt-get update failed" >&2
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
  || echo "system-deps: could not install ${need[*]}; tests needing them will be skipped" >&2
exit 0
