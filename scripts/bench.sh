#!/usr/bin/env bash
# `npm run bench[:NAME]`: set up, then run the benchmarks; results go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "disk2iso bench: run as root (it attaches loop devices and drops the page cache)" >&2
  exit 1
fi
# fuse3, libfuse3-dev and pkg-config build and mount the faulty disc of the rescue benchmark (test/tools/faultfs.c);
# xorriso builds the 50,000-file image of the file index benchmark; Lighthouse audits pages in Debian's chromium.
# postgresql: the cluster benchmarks start a throwaway server of their own (test/support/postgres.ts).
bash scripts/setup.sh gddrescue time coreutils util-linux fuse3 libfuse3-dev pkg-config xorriso chromium postgresql
exec node dist/bench/run.js "$@"
