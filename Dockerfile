# syntax=docker/dockerfile:1
# AutoBot backend: one process hosting every module, with its own Redis (unix socket under /data) and
# the operating system's Chromium. Debian bookworm so that redis-server and chromium come from apt and
# native modules (onnxruntime-node) match the runtime's glibc.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: compile TypeScript to dist/ ----
FROM ${NODE_IMAGE} AS build
# node-pty has no prebuilt Linux binary: node-gyp compiles it during `npm ci`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# .npmrc before `npm ci`: it skips onnxruntime-node's GPU download (the CPU binaries ship in the package).
ENV PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- deps: production node_modules only, installed on the same base as the runtime ----
FROM ${NODE_IMAGE} AS deps
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev && npm cache clean --force

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
# tini as PID 1: forwards SIGTERM to node (graceful shutdown stops the embedded Redis and flushes its AOF)
# and reaps the zombies that redis-server and Chromium's helper processes would otherwise leave.
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server chromium fonts-liberation tini \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8001 \
    AUTOBOT_DATA_DIR=/data \
    PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH=/usr/bin/chromium \
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

# Code and dependencies stay root-owned (read-only for the service); only /data is writable.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist

# The image's non-root `node` user (uid 1000) owns the data directory: Redis AOF and socket, uploads.
# chown before VOLUME: changes to a path after it is declared a volume are discarded.
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node

EXPOSE 8001
# Slim images have no curl: ask node's own fetch.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8001) + '/api/v1/health/live', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/main.js"]
