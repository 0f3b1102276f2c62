#!/usr/bin/env bash
# The main job: a whole bottle on local upstreams (tooling/demo/run.mjs). Run through
# `tooling/setup.sh -- pnpm demo`, which provides Node, bubblewrap and the build first.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec node "$root/tooling/demo/run.mjs"
