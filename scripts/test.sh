#!/usr/bin/env bash
# The README's second command (and CI's): set up everything the tests need, then run them all.
# Tests need root: they attach loop devices and mount FUSE file systems.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "disk2iso tests: run as root (they use loop devices, FUSE and tmpfs mounts)" >&2
  exit 1
fi
# mosquitto: the MQTT channel's broker; par2: recovery data for archived images; udfclient:
# the UDF reader's tests fill an mkudffs image with it, without mounting.
# postgresql: the cluster mode's tests start throwaway servers of their own (test/support/postgres.ts),
# whether or not the package's post-install created and started a system cluster.
# iproute2: the cluster's failure tests give a node a network namespace of its own (test/support/netns.ts).
# systemd, shellcheck, nginx and openssl: the package's and the proxy's tests (systemd-analyze,
# sysusers, tmpfiles, systemd-notify; a real nginx with a test CA); prometheus scrapes /metrics.
bash scripts/setup.sh mosquitto par2 udfclient xorriso gddrescue fuse3 libfuse3-dev pkg-config udftools coreutils util-linux udev chromium bsdutils socat nginx openssl prometheus systemd shellcheck postgresql iproute2
modprobe loop 2>/dev/null || true
modprobe fuse 2>/dev/null || true
# The whole run (CI's) first checks types, lint, format, module boundaries and unused code; a run of
# chosen files (`npm test -- test/http`) goes straight to them.
if [ $# -eq 0 ]; then
  npm run --silent check
fi
exec node scripts/run-tests.mjs "$@"
