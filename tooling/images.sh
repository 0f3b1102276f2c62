#!/usr/bin/env bash
# Builds the sidecar container images with podman and no image registry:
#
#   tooling/images.sh            # base (cached) + bottle-gate:dev, bottle-cred-proxy:dev, bottle-tokman:dev
#   tooling/images.sh --rebase   # make the base again even when it exists
#
# 1. The base: a Debian bookworm minbase root file system made with debootstrap from the
#    machine's configured apt mirror, plus Node (the version tooling/setup.sh pins, from the
#    npm registry's node-linux-<arch> package), npm (the npm registry's npm package) and a
#    `node` user (uid 1000), as in the official node:24-bookworm-slim image; imported with
#    `podman import`. Skipped when the base image already exists.
# 2. Each sidecar's Dockerfile (next to its package) built FROM that base (--build-arg BASE_IMAGE), with the
#    workspace as context. Canary files are planted in the context during the builds (and
#    removed after); the smoke tests look for them in every layer of every image.
# 3. Sizes: each image, the base, the base plus the production dependencies, and the ratio.
#
# Podman settings (ulimits, runc, cgroupfs, netavark) come from a containers.conf this
# script writes under the cache directory (CONTAINERS_CONF); /etc is never edited.
# The machine's CA bundle reaches the build stage as a build secret (for a TLS-intercepting
# egress to the npm registry); it is never written into a layer.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${BOTTLE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bottle}
NODE_VERSION=$(sed -n 's/^NODE_VERSION=\([0-9.]*\).*/\1/p' "$root/tooling/setup.sh")
NPM_VERSION=11 # the npm major Node 24 ships
BASE_IMAGE=localhost/bottle-node-base:$NODE_VERSION
IMAGES=(gate cred-proxy tokman)
# The package whose directory holds each image's Dockerfile.
declare -A PACKAGE=([gate]=git-gate [cred-proxy]=cred-proxy [tokman]=tokman)

rebase=
for arg in "$@"; do
  case "$arg" in
    --rebase) rebase=1 ;;
    *) echo "usage: tooling/images.sh [--rebase]" >&2; exit 2 ;;
  esac
done

die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }
t0=$SECONDS
step_start=$SECONDS
step() { printf 'images: %s\n' "$*" >&2; step_start=$SECONDS; }
took() { printf 'images: %s took %ss\n' "$1" "$((SECONDS - step_start))" >&2; }

[ "$(id -u)" = 0 ] || die "run as root: the images are built and tested with rootful podman"
command -v podman >/dev/null || die "podman is missing (see tooling/images/README.md: apt-get install podman …)"

# Podman's settings for this machine, without touching /etc.
mkdir -p "$cache/images"
export CONTAINERS_CONF=$root/tooling/images/containers.conf

case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "no node-linux package for $(uname -m)" ;;
esac

# The first Debian (not security) mirror among the machine's apt sources.
apt_mirror() {
  local files=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources) f
  for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    awk '
      /^deb[ \t]/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }
      /^URIs:/ { print $2 }
    ' "$f"
  done | grep -v -e security -e '-updates' | grep -m1 '/debian/\?$' || true
}

npm_unpack() { # npm_unpack SPEC DIR: the registry's tarball of SPEC, unpacked into DIR
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$1" >/dev/null) || { rm -rf "$tmp"; die "npm pack $1 failed"; }
  mkdir -p "$2"
  tar -xzf "$tmp"/*.tgz -C "$2" --strip-components=1
  rm -rf "$tmp"
}

if [ -z "$rebase" ] && podman image exists "$BASE_IMAGE"; then
  echo "images: base $BASE_IMAGE exists (tooling/images.sh --rebase makes it again)" >&2
else
  command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
  command -v npm >/dev/null || die "npm is needed to fetch Node from the npm registry"
  mirror=$(apt_mirror)
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*"
  rootfs=$cache/images/rootfs
  rm -rf "$rootfs"
  step "debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/images/debootstrap.log" 2>&1 ||
    { tail -20 "$cache/images/debootstrap.log" >&2; die "debootstrap failed (log: $cache/images/debootstrap.log)"; }
  took debootstrap

  step "Node $NODE_VERSION and npm $NPM_VERSION from the npm registry"
  npm_unpack "node-linux-$arch@$NODE_VERSION" "$cache/images/node"
  install -m 0755 "$cache/images/node/bin/node" "$rootfs/usr/local/bin/node"
  rm -rf "$cache/images/node"
  npm_unpack "npm@$NPM_VERSION" "$rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  # As Debian's slim images: dpkg leaves out documentation, manuals and translations (also in
  # packages the images install later), and the ones already unpacked go.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
  find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian/overrides,locale,man}/*
  # What the official slim image also leaves out: package lists, caches, logs.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
    "$rootfs"/var/log/* "$rootfs"/tmp/*
  chroot "$rootfs" node --version >/dev/null || die "node does not run in the base"
  took node

  step "podman import $BASE_IMAGE"
  tar -C "$rootfs" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=$NODE_VERSION" \
    --change 'CMD ["node"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  took import
fi

# Canaries: files a careless build would copy into a layer. .dockerignore excludes the
# first ones; the last one sits among the sources and must never reach a final stage. Their
# random values are made once per machine and kept, so that the build context stays the same
# from one run to the next and the layer cache holds.
canary_paths=(.env bottle-canary.pem .npmrc packages/gate-server/.env.local
  packages/cred-proxy/src/canary-secret.txt)
canary_file=$cache/images/canaries
if [ "$(wc -l <"$canary_file" 2>/dev/null || echo 0)" != "${#canary_paths[@]}" ]; then
  for _ in "${canary_paths[@]}"; do
    echo "BTLCANARY$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  done >"$canary_file"
fi
mapfile -t canaries <"$canary_file"
planted=()
cleanup() { for p in "${planted[@]}"; do rm -f "$root/$p"; done; }
trap cleanup EXIT
for i in "${!canary_paths[@]}"; do
  p=${canary_paths[i]}
  [ -e "$root/$p" ] && die "$p exists in the build context; move it away first"
  printf 'TOKEN=%s\n' "${canaries[i]}" >"$root/$p"
  planted+=("$p")
done

ca_args=()
[ -f /etc/ssl/certs/ca-certificates.crt ] && ca_args=(--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt)
for name in "${IMAGES[@]}"; do
  step "podman build bottle-$name:dev"
  podman build --quiet --format docker --layers \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" "${ca_args[@]}" \
    -f "$root/packages/${PACKAGE[$name]}/Dockerfile" -t "bottle-$name:dev" "$root" >/dev/null
  took "build bottle-$name:dev"
done
cleanup
planted=()

# The canaries and the images they were planted for, for the smoke tests.
{
  printf '{"canaries":['
  sep=
  for v in "${canaries[@]}"; do printf '%s"%s"' "$sep" "$v"; sep=,; done
  printf '],"images":{'
  sep=
  for name in "${IMAGES[@]}"; do
    printf '%s"bottle-%s:dev":"%s"' "$sep" "$name" "$(podman image inspect --format '{{.Id}}' "bottle-$name:dev")"
    sep=,
  done
  printf '}}\n'
} >"$cache/images/canaries.json"

# Sizes. The reference for each image is the base plus its production dependencies (the
# `pnpm deploy --prod` output in /app); the target is at most 1.2x that. The gate also carries
# git and the OpenSSH client (with the perl git depends on in Debian), which the reference
# leaves out: its line says how much they weigh.
size_of() { podman image inspect --format '{{.Size}}' "$1"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
base_size=$(size_of "$BASE_IMAGE")
echo "images: $BASE_IMAGE $(mb "$base_size")"
for name in "${IMAGES[@]}"; do
  size=$(size_of "bottle-$name:dev")
  deps=$(podman run --rm --network none --no-healthcheck --entrypoint du "bottle-$name:dev" -sb /app | cut -f1)
  reference=$((base_size + deps))
  ratio=$(awk -v s="$size" -v r="$reference" 'BEGIN { printf "%.2f", s / r }')
  verdict="within the 1.2 target"
  awk -v r="$ratio" 'BEGIN { exit !(r > 1.2) }' && verdict="OVER the 1.2 target"
  echo "images: bottle-$name:dev $(mb "$size"): base + production dependencies $(mb "$reference"), ratio $ratio ($verdict); the rest $(mb "$((size - reference))")"
done
echo "BOTTLE_BASE_IMAGE=$BASE_IMAGE"
echo "images: done in $((SECONDS - t0))s"
