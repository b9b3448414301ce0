# Build: compile TypeScript with the dev dependencies.
FROM registry.access.redhat.com/ubi9/nodejs-22-minimal AS build
WORKDIR /opt/app-root/src
COPY --chown=1001:0 package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY --chown=1001:0 tsconfig.json tsconfig.build.json ./
COPY --chown=1001:0 src ./src
COPY --chown=1001:0 routes ./routes
RUN npm run build

# Run: production dependencies only, non-root. Production uses DATABASE_URL; the embedded
# PostgreSQL is for development and is not started when DATABASE_URL is set.
FROM registry.access.redhat.com/ubi9/nodejs-22-minimal
WORKDIR /opt/app-root/src
ENV NODE_ENV=production PORT=8000
COPY --chown=1001:0 package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
COPY --from=build --chown=1001:0 /opt/app-root/src/dist ./dist
USER 1001
EXPOSE 8000
# The live set is small (see BENCHMARKS.md); a heap limit makes V8 collect before the pod's memory limit.
CMD ["node", "--max-old-space-size=192", "dist/src/server.js"]
