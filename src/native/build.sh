#!/bin/sh
# Builds the native addons (npm's install step, also of `npm install -g kube-portsentry`)
# against the local Node headers; nothing is downloaded.
set -e
. "$(dirname "$0")/nodedir.sh"
exec node-gyp rebuild
