#!/bin/sh
# raw-socket: the detector benchmark's baseline reader, and the packet sender of some
# benchmarks and tests. Not a dependency of the package: its install script would build
# against Node's headers, downloading them unless told where they are. Installed here,
# for the benchmarks and the test suite only (`npm run bench:deps`), against the local ones.
set -e
cd "$(dirname "$0")/.."
if node -e "require('raw-socket')" 2>/dev/null; then exit 0; fi
. src/native/nodedir.sh
# npm 11 runs a dependency's install script only when allowed, and in a project takes that
# allowance from a config file only, not from the command line (npm 10 ignores the key):
# the user's config, with the allowance added, in a file of its own for this install.
config=$(mktemp)
trap 'rm -f "$config"' EXIT
{ cat "${npm_config_userconfig:-$HOME/.npmrc}" 2>/dev/null || true; echo; echo 'allow-scripts=raw-socket'; } > "$config"
npm install --userconfig "$config" --no-save --no-audit --no-fund raw-socket@1.8.1
