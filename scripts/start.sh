#!/usr/bin/env bash
# The README's first command: set up, then run the service (web interface and API on 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Run through its own first line, which sets the V8 flags the service runs with.
exec bin/disk2iso serve "$@"
