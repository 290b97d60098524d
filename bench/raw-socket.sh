#!/bin/sh
# raw-socket: the detector benchmark's baseline reader, and the packet sender of some
# benchmarks and tests. Not a dependency of the package: its install script would build
# against Node's headers, downloading them unless told where they are. Installed here,
# for the benchmarks and the test suite only (`npm run bench:deps`), against the local ones.
set -e
cd "$(dirname "$0")/.."
if node -e "require('raw-socket')" 2>/dev/null; then exit 0; fi
. src/native/nodedir.sh
# npm 11 runs a dependency's install script only when package.json's allowScripts names it
# (its --allow-scripts flag is refused in a project); npm 10 runs it anyway.
exec npm install --no-save --no-audit --no-fund raw-socket@1.8.1
