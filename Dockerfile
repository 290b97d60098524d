# kube-portsentry: one image for the agent (DaemonSet) and the operator (Deployment).
#
# The image's user is the non-root "portsentry" (uid/gid 10001), which the operator runs
# as. The agent runs as root (the chart sets runAsUser: 0) because raw sockets and
# nftables/ipset need it, but with every capability dropped except NET_RAW and NET_ADMIN,
# no privilege escalation and a read-only root filesystem.
#
#   docker build -t kube-portsentry:0.1.0 .

ARG NODE_MAJOR=20

FROM node:${NODE_MAJOR}-bookworm AS build
# Compilers for the native addons (node-gyp); Debian stable's current versions.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# node-gyp builds against the headers shipped with Node instead of downloading them.
ENV npm_config_nodedir=/usr/local
# Dependencies first, so source edits reuse this layer; npm ci also builds the addons.
COPY package.json package-lock.json binding.gyp ./
COPY src/native ./src/native
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:${NODE_MAJOR}-bookworm-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kube-portsentry" \
      org.opencontainers.image.description="Port-scan detection and active response for Kubernetes clusters and single hosts" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
# The firewall and routing tools the responders run.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables iptables ipset iproute2 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 portsentry \
 && useradd --system --uid 10001 --gid portsentry --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin portsentry
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/build/Release/*.node ./build/Release/
COPY --from=build /app/dist/src ./dist/src
COPY policies ./policies
COPY crds ./crds
USER 10001:10001
ENTRYPOINT ["node", "/app/dist/src/cli.js"]
CMD ["--help"]
