#!/usr/bin/env bash
# Installs what disk2iso needs to run and builds it. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "disk2iso setup: please install these Debian packages (as root): ${missing[*]}" >&2
    return 1
  fi
  echo "disk2iso setup: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "disk2iso setup: Node.js 20 or newer is required (found $(node --version))" >&2
  exit 1
fi

# Native modules (better-sqlite3) compile from source when no prebuilt binary can be fetched;
# eject opens the tray of real drives.
apt_install build-essential python3 eject "$@"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
