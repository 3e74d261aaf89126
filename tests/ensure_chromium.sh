#!/usr/bin/env bash
# Installs Debian's chromium for the browser tests when it is missing (needs root + apt).
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for browser tests..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || exit 1
  command -v chromium >/dev/null 2>&1 && exit 0
fi
exit 1
