#!/bin/bash
# The demo's scripted agent: runs inside the bottle and prints one `STEP ok|fail name: detail`
# line per check. Its only ways out are the git gate and the proxy on its own loopback.
set -u
upstream=$1 host_port=$2 workdir=$PWD
step() { printf 'STEP %s %s: %s\n' "$1" "$2" "$3"; }

if git clone -q "$upstream" work 2>clone.err; then
  step ok "clone through the gate" "$(git -C work log -1 --format='%h %s')"
else
  step fail "clone through the gate" "$(tr '\n' ' ' <clone.err)"
  exit 1
fi
cd work
printf 'export const answer = 42;\n' >answer.js
git add answer.js && git commit -qm "add the answer"
if git push -q origin HEAD:main 2>push.err; then
  step ok "push clean work" "$(git log -1 --format='%h %s')"
else
  step fail "push clean work" "$(tr '\n' ' ' <push.err)"
fi

# A fake GitHub token, made up here: the gate's scanner must refuse it.
token="ghp_$(head -c 200 /dev/urandom | tr -dc 'A-Za-z0-9' | head -c 36)"
printf 'const token = "%s";\n' "$token" >config.js
git add config.js && git commit -qm "add config"
if git push -q origin HEAD:main 2>push.err; then
  step fail "a planted key is refused" "the push went through"
else
  reason=$(grep -o 'push rejected: [^.]*secret[a-z ]*' push.err | head -1 | sed 's/ *$//')
  finding=$(grep -o 'config\.js:1 .*(40 chars)' push.err | head -1)
  if [ -n "$reason" ] && [ -n "$finding" ]; then
    step ok "a planted key is refused" "$reason: $finding"
  else
    step fail "a planted key is refused" "$(tr '\n' ' ' <push.err)"
  fi
fi
git reset -q --hard HEAD~1

answer=$(curl -s --max-time 10 "$ANTHROPIC_BASE_URL/v1/messages" \
  -H "x-api-key: $ANTHROPIC_API_KEY" -H 'anthropic-version: 2023-06-01' \
  -H 'content-type: application/json' \
  -d '{"model":"claude-demo","max_tokens":64,"messages":[{"role":"user","content":"hello"}]}')
case $answer in
*'"text"'*) step ok "model API through the proxy (key $ANTHROPIC_API_KEY)" "$(printf '%s' "$answer" | grep -o '"text":"[^"]*"' | head -1)" ;;
*) step fail "model API through the proxy" "$answer" ;;
esac

# A real key looks like sk-ant-…; the agent's environment, files and processes hold none.
prefix=sk-ant
found=$( { env; cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' '\n'
  grep -rhs . "$HOME" /etc "$workdir" 2>/dev/null; } | grep -o "$prefix-[A-Za-z0-9_-]\{8,\}" | sort -u)
if [ -z "$found" ]; then
  step ok "no real token in env, files or /proc" "searched env, \$HOME, /etc, the workspace, /proc/*/environ"
else
  step fail "no real token in env, files or /proc" "found $found"
fi

if curl -s --max-time 3 "http://127.0.0.1:$host_port/" >/dev/null 2>&1; then
  step fail "the host's loopback is unreachable" "reached 127.0.0.1:$host_port"
else
  step ok "the host's loopback is unreachable" "127.0.0.1:$host_port: no route out of the bottle's own loopback"
fi
