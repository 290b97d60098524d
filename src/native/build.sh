#!/bin/sh
# Builds the native addons (npm's install step). node-gyp downloads Node's headers unless
# told where they are; offline machines have them beside the node binary, so point it there.
set -e
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if [ -f "$nodedir/include/node/node_api.h" ]; then
    npm_config_nodedir="$nodedir"
    export npm_config_nodedir
  fi
fi
exec node-gyp rebuild
