# Gatehouse: a small, non-root production image.
#   docker build -t gatehouse .
#   docker run -p 3000:3000 -e ISSUER=https://id.example.com -e DATABASE_URL=postgresql://... \
#     -e MASTER_KEYS=... -e COOKIE_SECRETS=... gatehouse
# The first stage installs every dependency, generates the Prisma clients and
# compiles src/ to plain JavaScript in dist/ (`npm run build`, type-checked);
# the second gets dist/ and the production dependencies only, and runs
# `node dist/server.js`: no TypeScript sources, compiler or loader. Both stages
# use the same base image, so that the native modules built in the first
# (better-sqlite3) match the second's Node.js ABI.
ARG NODE_VERSION=22

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
# Toolchain for better-sqlite3's node-gyp build (argon2 ships prebuilt binaries).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
# npm ci runs the postinstall (npm run db:generate, then a build of whatever
# src/ holds at that point: the generated clients), which needs the Prisma
# schemas and configs, the scripts and the tsconfig files. The sources come
# after it, so that a change to src/ does not reinstall the dependencies.
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts/ ./scripts/
COPY prisma/ ./prisma/
RUN npm ci --no-audit --no-fund
COPY src/ ./src/
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
# package.json says "type": "module" (dist/ is ESM); prisma/ holds the
# migrations applied at start; bin/gatehouse.js loads scripts/build-state.mjs
# (with no src/ in the image, it takes dist/ as built).
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules/ ./node_modules/
COPY --from=build /app/dist/ ./dist/
COPY --from=build /app/prisma/ ./prisma/
COPY --from=build /app/scripts/build-state.mjs ./scripts/
COPY bin/ ./bin/
COPY views/ ./views/
COPY static/ ./static/
# /app/data holds the SQLite database when DATABASE_URL is left at its default;
# /app/keys is KEYS_DIR (unused in production, where MASTER_KEYS is required).
RUN mkdir -p /app/data /app/keys \
 && chown node:node /app/data /app/keys \
 && chmod 0700 /app/keys \
 && chmod 0755 /app/bin/gatehouse.js \
 && ln -s /app/bin/gatehouse.js /usr/local/bin/gatehouse
USER node
VOLUME ["/app/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/server.js"]
