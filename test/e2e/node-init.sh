#!/usr/bin/env bash
# The init of one node of the real-cluster suite, started in the node's network namespace
# and a mount namespace of its own (unshare). It gives the node's daemons what a node's own
# root filesystem would (kind's node containers have one): its own /var and /run, its
# /etc/resolv.conf and CNI configuration directory; the rest of the host's filesystem is
# shared, read as is. Then it starts containerd, the kubelet and kube-proxy, and waits.
# Usage: node-init.sh NODE_DIR BIN_DIR NODE_NAME NODE_IP
set -euo pipefail
node_dir="$1" bin="$2" name="$3" node_ip="$4"

# Mounts made below stay in this namespace; the node's own (volumes, container root
# filesystems) propagate among its daemons.
mount --make-rshared /
mount --bind "$node_dir/etc/resolv.conf" /etc/resolv.conf
mount --bind "$node_dir/etc/cni/net.d" /etc/cni/net.d
mount --bind "$node_dir/run" /run
# Last: NODE_DIR itself is below /var on the host.
mount --bind "$node_dir/var" /var

log=/var/log/kps-e2e
mkdir -p "$log"
containerd --config /var/lib/kps-e2e/containerd.toml >"$log/containerd.log" 2>&1 &
for _ in $(seq 300); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.1; done
"$bin/kubelet" --config=/var/lib/kubelet/config.json --kubeconfig=/var/lib/kubelet/kubeconfig \
  --hostname-override="$name" --node-ip="$node_ip" --v=2 >"$log/kubelet.log" 2>&1 &
"$bin/kube-proxy" --config=/var/lib/kube-proxy/config.json --v=2 >"$log/kube-proxy.log" 2>&1 &
wait
