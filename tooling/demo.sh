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
section "git-gate: the agent clones and pushes through the gate; a planted secret never leaves"
gg="$scratch/git-gate"
mkdir -p "$gg/upstreams/acme" "$gg/config"
chmod 700 "$gg/config"
# git for the demo: no system or user config (the machine's may carry a credential helper).
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$gg/operator.gitconfig" GIT_TERMINAL_PROMPT=0
printf '[user]\n\tname = Operator\n\temail = op@acme.example\n[init]\n\tdefaultBranch = main\n' >"$GIT_CONFIG_GLOBAL"
git init -q --bare "$gg/upstreams/acme/api.git"
git init -q "$gg/seed" && printf '# api\n' >"$gg/seed/README.md"
git -C "$gg/seed" add -A && git -C "$gg/seed" commit -qm "first" && git -C "$gg/seed" push -q "$gg/upstreams/acme/api.git" main
# The upstream demands a token only the gate holds (a forge's HTTPS remote, here on loopback).
export UPSTREAM_TOKEN="demo-upstream-$(node -e 'process.stdout.write(require("node:crypto").randomBytes(12).toString("hex"))')"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$scratch"' EXIT
node "$root/tooling/serve-git-http.mjs" "$gg/upstreams" >"$gg/upstream.url" &
pids+=($!)
for _ in $(seq 50); do [ -s "$gg/upstream.url" ] && break; sleep 0.1; done
upstream="$(cat "$gg/upstream.url")/acme/api.git"
cat >"$gg/config/bottle.yaml" <<YAML
version: 1
name: acme
agent: { command: [agent] }
git_gate:
  user: { name: Acme Agent, email: agent@acme.example }
  repos:
    api:
      url: $upstream
      key: { provider: token, token_ref: UPSTREAM_TOKEN }
  scan: { scanner: builtin }
YAML
chmod 600 "$gg/config/bottle.yaml"
mkdir -m 700 "$gg/tokens"
gate_token=$(node "$root/packages/gate-tokens/dist/cli.js" create --token-file "$gg/tokens/tokens.json" --project acme --task demo 2>/dev/null)
echo "upstream $upstream (token from \$UPSTREAM_TOKEN, held by the gate only)"
# A free loopback port, so the agent's gitconfig can name the gate before it starts.
port=$(node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{process.stdout.write(String(s.address().port));s.close()})')
echo "\$ bottle-git-gate entrypoint --manifest bottle.yaml --stage stage --gate-url http://127.0.0.1:$port -- --token-file tokens.json --port $port"
node "$root/packages/git-gate/dist/cli.js" entrypoint --manifest "$gg/config/bottle.yaml" --stage "$gg/stage" \
  --gate-url "http://127.0.0.1:$port" -- --token-file "$gg/tokens/tokens.json" --port "$port" 2>"$gg/gate.log" &
pids+=($!)
gate=""
for _ in $(seq 100); do
  gate=$(sed -n 's/.*"msg":"listening".*"url":"\([^"]*\)".*/\1/p; s/.*"url":"\([^"]*\)".*"msg":"listening".*/\1/p' "$gg/gate.log" | head -1)
  [ -n "$gate" ] && break
  sleep 0.1
done
[ -n "$gate" ] || { cat "$gg/gate.log" >&2; echo "demo: the gate did not start" >&2; exit 1; }
grep -v '^{' "$gg/gate.log" || true
echo "gate listening on $gate"

# The agent: the stage's gitconfig sends the upstream's URL to the gate; its only credential
# is the gate token (scoped to project acme), passed here through git's environment.
agent() {
  GIT_CONFIG_GLOBAL="$gg/stage/agent/gitconfig" GIT_CONFIG_COUNT=1 \
    GIT_CONFIG_KEY_0="http.$gate/.extraHeader" \
    GIT_CONFIG_VALUE_0="Authorization: Basic $(printf '%s:x' "$gate_token" | base64 -w0)" "$@"
}
echo "\$ git clone $upstream work    # insteadOf → $gate/acme/api.git"
agent git clone -q "$upstream" "$gg/work"
cd "$gg/work"
printf 'export const answer = 42;\n' >answer.js
agent git add answer.js && agent git commit -qm "add the answer"
echo "\$ git push origin main        # a clean commit"
agent git push origin main 2>&1 | grep -v '^To '
echo "upstream main is now: $(git -C "$gg/upstreams/acme/api.git" log -1 --format='%h %s' main)"

ghp="ghp_$(node -e 'const a="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";process.stdout.write(Array.from(require("node:crypto").randomBytes(36),b=>a[b%62]).join(""))')"
printf 'const token = "%s";\n' "$ghp" >config.js
agent git add config.js && agent git commit -qm "add config"
echo "\$ git push origin main        # a commit with a (fake) GitHub token"
set +e
agent git push origin main >"$gg/push.out" 2>&1
code=$?
set -e
grep -v '^To ' "$gg/push.out"
cd "$root"
[ "$code" != 0 ] || { echo "demo: expected the push with a secret to be rejected" >&2; exit 1; }
if grep -q "$ghp" "$gg/push.out" "$gg/gate.log" "$gg/stage/git-gate/gate.log"; then
  echo "demo: the secret leaked into an output" >&2
  exit 1
fi
echo "upstream main is still: $(git -C "$gg/upstreams/acme/api.git" log -1 --format='%h %s' main)"

section "done"
