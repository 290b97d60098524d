#!/usr/bin/env bash
# Builds Helm from its Go module (helm.sh/helm/v3/cmd/helm at a pinned version) for the
# chart tests. Helm publishes its binaries on GitHub, which this network cannot reach, so
# it is built like the control plane: once per machine, cached outside the repo, keyed by
# version. v3.20 is built on the same Kubernetes libraries (v0.35) as the test API server.
# Prints the path of the helm binary.
set -euo pipefail

HELM_VERSION="${KPS_HELM_VERSION:-3.20.2}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kube-portsentry/helm"
BIN="$CACHE/bin/helm-$HELM_VERSION"
export GOFLAGS=-mod=mod

if [ -x "$BIN/helm" ]; then
  echo "$BIN/helm"
  exit 0
fi
mkdir -p "$BIN"

src="$CACHE/src/helm-$HELM_VERSION"
mkdir -p "$src"
printf 'module kube-portsentry-helm\n\ngo 1.25\n\nrequire helm.sh/helm/v3 v%s\n' "$HELM_VERSION" >"$src/go.mod"
gomod="$(cd "$src" && go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
# The stamps Helm's Makefile sets: its own version, and the Kubernetes version `helm
# template` and `helm lint` assume (.Capabilities.KubeVersion), from its client-go.
k8s_minor="$(sed -n 's/^\s*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")"
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
# A fresh wrapper module has no go.sum; resolve it like `go get` would.
(cd "$src" && go mod download >&2 && go build -trimpath -ldflags "$ldflags" -o "$BIN/helm.tmp" helm.sh/helm/v3/cmd/helm >&2)
mv "$BIN/helm.tmp" "$BIN/helm"
echo "$BIN/helm"
