# Sourced by the build scripts: points node-gyp at the Node headers installed beside the node
# binary (Debian's and NodeSource's packages, the official tarballs all have them), so no
# install step ever downloads them. A given npm_config_nodedir is kept. Without headers it
# stops with what to install: security tools are installed on hosts that reach only
# package registries.
if [ -z "${npm_config_nodedir:-}" ]; then
  nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
  if [ ! -f "$nodedir/include/node/node_api.h" ]; then
    echo "kube-portsentry: no Node headers in $nodedir/include/node (needed to build the native addons)." >&2
    echo "  Install them with Node (Debian: the nodejs package of NodeSource, or libnode-dev), or set npm_config_nodedir." >&2
    exit 1
  fi
  npm_config_nodedir="$nodedir"
  export npm_config_nodedir
fi
