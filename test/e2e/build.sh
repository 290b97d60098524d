#!/usr/bin/env bash
# Builds what the real-cluster suite adds to the test control plane (test/envtest/build.sh):
# kube-controller-manager, kube-scheduler, kubelet and kube-proxy from the same
# k8s.io/kubernetes wrapper module and version, and CoreDNS from its Go module. Cached
# outside the repo, keyed by version, so only the first run on a machine pays the build.
# Prints the directory holding the binaries (the envtest ones are linked in beside them).
set -euo pipefail

K8S_VERSION="${KPS_K8S_VERSION:-1.35.4}"
COREDNS_VERSION="${KPS_COREDNS_VERSION:-1.14.7}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kube-portsentry"
BIN="$CACHE/e2e/bin/k8s-$K8S_VERSION-coredns-$COREDNS_VERSION"
export GOFLAGS=-mod=mod

envtest="$(bash "$(dirname "$0")/../envtest/build.sh" | tail -1)"
want=(kube-controller-manager kube-scheduler kubelet kube-proxy coredns)
done_all=1
for b in "${want[@]}"; do [ -x "$BIN/$b" ] || done_all=0; done
if [ "$done_all" = 1 ]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$BIN"
for b in kube-apiserver kubectl etcd; do ln -sf "$envtest/$b" "$BIN/$b"; done

# The wrapper module test/envtest/build.sh made for this version (same replaces).
src="$CACHE/envtest/src/kubernetes-$K8S_VERSION"
minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
# One go build for the four commands, so the packages they share compile once.
(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$BIN/" \
  k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy >&2)

src="$CACHE/e2e/src/coredns-$COREDNS_VERSION"
mkdir -p "$src"
printf 'module kube-portsentry-coredns\n\ngo 1.25\n\nrequire github.com/coredns/coredns v%s\n' "$COREDNS_VERSION" >"$src/go.mod"
(cd "$src" && go mod download >&2 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/coredns.tmp" github.com/coredns/coredns >&2)
mv "$BIN/coredns.tmp" "$BIN/coredns"
echo "$BIN"
