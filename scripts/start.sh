#!/usr/bin/env bash
# The README's first command: set up, then run the service (web interface and API on 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/disk2iso serve "$@"
