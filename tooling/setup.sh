#!/usr/bin/env bash
# Sets up the bottle workspace on this machine, then optionally runs a command with the
# toolchain on PATH:
#
#   tooling/setup.sh                 # set up only
#   tooling/setup.sh -- pnpm test    # set up, then run the tests
#
# Steps: bubblewrap (the CLI's sandbox backend runs the agent under `bwrap`; installed with
# apt-get when it is missing and this runs as root), Node (the machine's when >= 22.12, else a
# pinned Node 24 from the npm registry, cached per user), pnpm at the version pinned in
# package.json's "packageManager" (cached per user), `pnpm install --frozen-lockfile`, and
# `turbo run build`. Every step is skipped when its result is already in place, so a second
# run takes seconds. Nothing is fetched from anywhere but the npm registry and, for bubblewrap,
# the machine's own apt sources.
set -euo pipefail

NODE_VERSION=24.21.0 # Node 24 LTS; bump together with .ci/run and the Dockerfiles
MIN_NODE=22.12.0

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${BOTTLE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bottle}
quiet=${BOTTLE_SETUP_QUIET:-}

say() { [ -n "$quiet" ] || printf 'setup: %s\n' "$*" >&2; }
warn() { printf 'setup: warning: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

version_ge() { # version_ge A B: A >= B, both x.y.z
  local IFS=.
  local -a a=($1) b=($2)
  for i in 0 1 2; do
    ((${a[i]:-0} > ${b[i]:-0})) && return 0
    ((${a[i]:-0} < ${b[i]:-0})) && return 1
  done
  return 0
}

# Unpacks an npm package into DIR (atomically: a half-unpacked DIR is never left behind).
unpack_npm() { # unpack_npm SPEC DIR
  local spec=$1 dir=$2 tmp
  command -v npm >/dev/null || die "npm is needed to fetch $spec from the npm registry"
  mkdir -p "$(dirname "$dir")"
  tmp=$(mktemp -d "$dir.tmp.XXXXXX")
  # npm pack verifies the tarball against the registry's integrity hash.
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>"$tmp/npm.log") ||
    { cat "$tmp/npm.log" >&2; rm -rf "$tmp"; die "could not fetch $spec from the npm registry"; }
  mkdir "$tmp/pkg"
  tar -xzf "$tmp"/*.tgz -C "$tmp/pkg" --strip-components=1
  rm -rf "$dir"
  mv "$tmp/pkg" "$dir"
  rm -rf "$tmp"
}

# 1. bubblewrap, and curl for the demo's agent (Debian and Ubuntu package names; a fresh image
#    may have no package lists yet)
missing=()
command -v bwrap >/dev/null || missing+=(bubblewrap)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 2>/dev/null ||
      { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; } ||
      die "could not install ${missing[*]} with apt-get"
  else
    warn "${missing[*]} missing: the sandbox backend and its tests need bubblewrap 0.8 or later" \
      "and the demo curl (as root on Debian or Ubuntu: apt-get install ${missing[*]})"
  fi
fi

# 2. Node
node_ok=
if command -v node >/dev/null; then
  current=$(node -p 'process.versions.node' 2>/dev/null || echo 0.0.0)
  version_ge "$current" "$MIN_NODE" && node_ok=1
fi
if [ -z "$node_ok" ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no Node $NODE_VERSION package for $(uname -m); install Node >= $MIN_NODE" ;;
  esac
  node_dir=$cache/node-$NODE_VERSION-linux-$arch
  if [ ! -x "$node_dir/bin/node" ]; then
    say "fetching Node $NODE_VERSION (node-linux-$arch) from the npm registry"
    unpack_npm "node-linux-$arch@$NODE_VERSION" "$node_dir"
  fi
  export PATH="$node_dir/bin:$PATH"
  # Native addons must build against this Node's headers, not the machine's.
  export npm_config_nodedir="$node_dir"
fi
say "node $(node -p 'process.versions.node')"

# 3. pnpm, at the version package.json pins
pm=$(node -p 'require(process.argv[1]).packageManager' "$root/package.json")
case "$pm" in pnpm@*) ;; *) die "package.json must pin pnpm in packageManager (got '$pm')" ;; esac
pnpm_version=${pm#pnpm@}
pnpm_version=${pnpm_version%%+*}
pnpm_dir=$cache/pnpm-$pnpm_version
if [ ! -f "$pnpm_dir/bin/pnpm.cjs" ]; then
  say "fetching pnpm $pnpm_version from the npm registry"
  unpack_npm "pnpm@$pnpm_version" "$pnpm_dir"
fi
mkdir -p "$cache/bin"
shim=$cache/bin/pnpm
shim_text="#!/bin/sh
exec node \"$pnpm_dir/bin/pnpm.cjs\" \"\$@\""
if [ ! -x "$shim" ] || [ "$(cat "$shim")" != "$shim_text" ]; then
  printf '%s\n' "$shim_text" >"$shim.tmp" && chmod 755 "$shim.tmp" && mv "$shim.tmp" "$shim"
fi
export PATH="$cache/bin:$PATH"
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1
export COREPACK_ENABLE_STRICT=0

cd "$root"

# 4. Dependencies (pnpm itself skips the work when node_modules matches the lockfile)
say "installing dependencies (frozen lockfile)"
pnpm install --frozen-lockfile --prefer-offline >&2

# 5. Build (turbo replays unchanged packages from its cache)
say "building"
pnpm exec turbo run build --output-logs=errors-only --log-prefix=none >&2

if [ "${1:-}" = "--" ]; then
  shift
  [ $# -gt 0 ] || die "nothing to run after --"
  exec "$@"
elif [ $# -gt 0 ]; then
  die "usage: tooling/setup.sh [-- COMMAND [ARGS...]]"
fi
