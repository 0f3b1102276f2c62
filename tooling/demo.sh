#!/usr/bin/env bash
# The main job until bottles run: validate and plan the example manifests with the real
# `bottle` CLI, and show how a broken manifest is reported. Run through
# `tooling/setup.sh -- pnpm demo`, which provides Node and builds the CLI first.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bottle() { node "$root/apps/cli/dist/cli.js" "$@"; }
section() { printf '\n\033[1m━━ %s\033[0m\n' "$*"; }

# The realistic example names an SSH identity and a GitHub App key under ~/.config/bottle.
# Throwaway ones (mode 0600) go into a scratch HOME, so the file checks run for real.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/.config/bottle/keys"
node -e '
  const { generateKeyPairSync } = require("node:crypto");
  const { writeFileSync } = require("node:fs");
  const [identity, appKey] = process.argv.slice(1);
  const pem = (k) => k.privateKey.export({ type: "pkcs8", format: "pem" });
  writeFileSync(identity, pem(generateKeyPairSync("ed25519")), { mode: 0o600 });
  writeFileSync(appKey, pem(generateKeyPairSync("rsa", { modulusLength: 2048 })), { mode: 0o600 });
' "$scratch/.config/bottle/keys/acme-api" "$scratch/.config/bottle/acme-app.pem"
export HOME=$scratch
# One variable set, one empty, the rest unset: the plan shows which, never a value.
export ANTHROPIC_API_KEY=demo-value-never-printed GITHUB_TOKEN=
unset GITEA_TOKEN GITEA_ADMIN_TOKEN NPM_TOKEN SENTRY_TOKEN

section "bottle validate examples/*.yaml"
bottle validate examples/*.yaml

section "bottle plan examples/bottle.yaml"
bottle plan examples/bottle.yaml

section "bottle plan --json examples/minimal.yaml"
bottle plan --json examples/minimal.yaml

section "a broken manifest: every issue, with its code, line and column"
sed -e 's/scanner: auto/scaner: auto/' -e 's#upstream: https://sentry.io/api#upstream: http://sentry.io/api#' \
  examples/bottle.yaml >"$scratch/broken.yaml"
set +e
bottle validate "$scratch/broken.yaml"
code=$?
set -e
echo "(exit code $code)"
[ "$code" = 2 ] || { echo "demo: expected exit code 2 for the broken manifest" >&2; exit 1; }
section "done"
