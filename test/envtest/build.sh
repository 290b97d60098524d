#!/usr/bin/env bash
# Builds the real control plane the Kubernetes tests run against: kube-apiserver and
# kubectl from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3, each through a
# wrapper module of our own (the documented way to build Kubernetes commands from Go
# modules: require k8s.io/kubernetes, replace every staging module k8s.io/<name> with its
# published v0.Y.Z). Binaries are cached outside the repo, keyed by version, so only the
# first run on a machine pays the build (about 3 minutes on 2 cores).
# Prints the directory holding kube-apiserver, kubectl and etcd.
set -euo pipefail

K8S_VERSION="${KPS_K8S_VERSION:-1.35.4}"
ETCD_VERSION="${KPS_ETCD_VERSION:-3.7.3}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kube-portsentry/envtest"
BIN="$CACHE/bin/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
# Version stamps a release build gets from its build scripts (kubectl refuses to talk
# to a server that reports none).
minor="${K8S_VERSION#1.}"; minor="${minor%%.*}"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
export GOFLAGS=-mod=mod

if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kubectl" ] && [ -x "$BIN/etcd" ]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$BIN"

src="$CACHE/src/kubernetes-$K8S_VERSION"
mkdir -p "$src"
gomod="$(cd "$src" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
{
  printf 'module kube-portsentry-envtest\n\ngo 1.25\n\nrequire k8s.io/kubernetes v%s\n\n' "$K8S_VERSION"
  # Every "k8s.io/x => ./staging/src/k8s.io/x" of Kubernetes' go.mod, pointed at v0.Y.Z.
  grep -oE 'k8s.io/[a-z0-9-]+ => ./staging/src/k8s.io/[a-z0-9-]+' "$gomod" |
    awk -v v="v0.${K8S_VERSION#1.}" '{ print "replace " $1 " => " $1 " " v }'
} >"$src/go.mod"
(cd "$src" && go build -ldflags "$ldflags" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2)
(cd "$src" && go build -ldflags "$ldflags" -o "$BIN/kubectl" k8s.io/kubernetes/cmd/kubectl >&2)

src="$CACHE/src/etcd-$ETCD_VERSION"
mkdir -p "$src"
printf 'module kube-portsentry-etcd\n\ngo 1.25\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" >"$src/go.mod"
(cd "$src" && go build -o "$BIN/etcd" go.etcd.io/etcd/server/v3 >&2)

echo "$BIN"
