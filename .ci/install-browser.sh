#!/usr/bin/env bash
# Debian's Chromium and fonts for the browser tests (tests/browser/) and bench/dashboard.py.
# Playwright drives /usr/bin/chromium directly: its own browser download is not used.
# Idempotent: does nothing when chromium is already installed.
set -euo pipefail

if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi dejavu; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core fonts-liberation fontconfig
/usr/bin/chromium --version
