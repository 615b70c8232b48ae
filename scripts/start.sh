#!/usr/bin/env bash
# The README's first command: set up, then show what can be imaged.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/disk2iso devices "$@"
