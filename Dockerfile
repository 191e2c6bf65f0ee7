# syntax=docker/dockerfile:1
#
# Sluice as one small container: `docker build -t sluice .` then
#   docker run --rm -e KAFKA_BROKERS=broker:9092 -p 8080:8080 sluice
# runs the job baked in at /app/jobs/job.ts (by default the example, examples/page-views.ts).
#
# Jobs live in /app/jobs. /app is the `sluice` package itself (package.json with "name": "sluice",
# "type": "module" and `exports`), so a job's `import ... from 'sluice'` resolves through Node's package
# self-reference, and the job is an ES module without a package.json of its own. (NODE_PATH is ignored
# by ES modules; a job placed outside /app would need /app reachable as node_modules/sluice.) Three ways
# to give the container a job:
#   - bake one in:   docker build --build-arg JOB=path/to/my-job.ts -t my-job .
#   - mount one:     docker run -v "$PWD/my-job.ts:/app/jobs/job.ts:ro" ...   (Kubernetes: a ConfigMap
#                    mounted at /app/jobs, see deploy/kubernetes/)
#   - name another:  docker run ... sluice run /app/jobs/other.ts
# A job that needs npm packages of its own: `FROM sluice` and `RUN npm install <pkg>` in /app.
# Job modules in TypeScript are imported as they are: Node 24 strips their types when the service starts
# (erasable TypeScript only, and not from under a node_modules folder: /app/jobs is neither).

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: all dependencies, compile src/ to dist/ -------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, dist/ and bin/ only ------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY --from=build /src/dist ./dist
ARG JOB=examples/page-views.ts
COPY ${JOB} ./jobs/job.ts

# Everything above is owned by root and read-only to the service; it writes nothing but its logs (to
# stdout).
USER node

# SLUICE_HTTP_PORT's default: /healthz, /readyz, /metrics, /api/*, and the status page at /.
EXPOSE 8080

# No curl in slim images: Node (18+) has fetch. 127.0.0.1 works with the default SLUICE_HTTP_HOST
# (0.0.0.0); the port follows SLUICE_HTTP_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SLUICE_HTTP_PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# PID 1 without an init (no tini, no `docker run --init` needed): the kernel gives PID 1 no default
# signal actions, so a signal it does not handle is ignored. Sluice handles SIGTERM and SIGINT itself
# (src/main.ts): it stops fetching, finishes and commits the running batch, leaves the consumer group
# and exits 0 within SLUICE_SHUTDOWN_TIMEOUT (30 s by default: give `docker stop -t` / Kubernetes'
# terminationGracePeriodSeconds more than that). It starts no child processes (workers are threads),
# so there are no orphans to reap. A SIGTERM that arrives before start-up has installed the handlers
# is ignored, and the runtime's SIGKILL after the grace period ends the container.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/sluice.js"]
CMD ["run", "/app/jobs/job.ts"]
