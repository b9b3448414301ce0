import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import swaggerUi from '@fastify/swagger-ui'
import type { SpanProcessor } from '@opentelemetry/sdk-trace-node'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Config } from './config.js'
import type { BatchReport } from './ingress/kafka-consumer.js'
import { createLogger } from './log.js'
import auth from './plugins/app/auth.js'
import kafkaConsumer from './plugins/app/kafka-consumer.js'
import metrics from './plugins/app/metrics.js'
import pipeline from './plugins/app/pipeline.js'
import reconcile from './plugins/app/reconcile.js'
import retention from './plugins/app/retention.js'
import store from './plugins/app/store.js'
import tracing from './plugins/app/tracing.js'
import configPlugin from './plugins/infrastructure/config.js'
import { boundServer } from './plugins/infrastructure/extra-listener.js'
import loadShedding from './plugins/infrastructure/load-shedding.js'
import openapi, { DOCS_PREFIX } from './plugins/infrastructure/openapi.js'
import problem from './plugins/infrastructure/problem.js'
import pushPort from './plugins/infrastructure/push-port.js'
import requestBounds from './plugins/infrastructure/request-bounds.js'
import shutdown from './plugins/infrastructure/shutdown.js'
import availability from '../routes/availability.js'
import diagnosis from '../routes/diagnosis.js'
import events from '../routes/events.js'
import health from '../routes/health.js'
import operator from '../routes/operator.js'
import reconcileRoutes from '../routes/reconcile.js'
import sources from '../routes/sources.js'
import sysconfig from '../routes/sysconfig.js'
import tasks from '../routes/tasks.js'

// src/app.ts runs from the source tree in tests and from dist/src/app.js in production.
function packageVersion (): string {
  for (const path of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { version: string }).version
    } catch {}
  }
  return '0.0.0'
}

const QUIET = new RegExp(`^(/healthz|/readyz|/metrics|${DOCS_PREFIX}/static/|/favicon\\.ico)`)

/** Probes, metrics and Swagger UI's files every few seconds would drown the requests that matter: they log at debug. */
class QuietProbes extends LogController {
  incomingRequest (request: FastifyRequest, reply: FastifyReply): void {
    if (QUIET.test(request.url)) request.log.debug({ req: request }, 'incoming request')
    else super.incomingRequest(request, reply)
  }

  requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (QUIET.test(request.url) && !error) reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed')
    else super.requestCompleted(error, request, reply)
  }
}

/** Code run at chosen points of the service's work; tests inject faults here (none in production). */
export interface AppHooks {
  /** Direct Kafka mode: after a batch's inbox commit, before its offset commit (a crash test's window). */
  afterInboxCommit?: (batch: BatchReport) => void | Promise<void>
}

export interface AppOptions {
  config: Config
  /** Where logs go (stdout when unset); tests capture them here. */
  logStream?: DestinationStream
  hooks?: AppHooks
  /** Span processors besides the OTLP exporter of the OTEL_* settings; tests pass an in-memory exporter's. */
  spanProcessors?: SpanProcessor[]
}

/** Builds the whole service; `server.ts` only listens. */
export async function buildApp ({ config, logStream, hooks, spanProcessors }: AppOptions): Promise<FastifyInstance> {
  const logger = await createLogger(config.LOG_LEVEL, logStream)
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: () => randomUUID(),
    bodyLimit: 1024 * 1024,
    // Also bounds close hooks: the shutdown grace, then stopping PostgreSQL.
    pluginTimeout: config.SHUTDOWN_GRACE_MS + 20_000,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
    // The shutdown plugin answers with Retry-After, and from the start of the drain.
    return503OnClosing: false,
    logController: new QuietProbes()
  })
  boundServer(app.server, config)

  // The registration order below is the start-up order and, since preClose hooks run in registration
  // order and every onClose after them, also the shutdown order; it is written down here only:
  // 1. shutdown's preClose turns pushes and operator calls away (503 + Retry-After) from the first moment;
  // 2. the Kafka consumer stops taking records before the pipeline drains (like pushes);
  // 3. a reconciliation run stops (it reads upstreams through the pipeline's clients);
  // 4. the pipeline lets running attempts finish, flushes the status relay and gives its leases back;
  // 5. the store's onClose closes the database (and stops the embedded PostgreSQL) last.
  // Infrastructure: settings, problem+json errors, the SIGTERM gate, extra listeners.
  await app.register(configPlugin, { config })
  await app.register(problem)
  await app.register(shutdown)
  await app.register(requestBounds)
  await app.register(pushPort)
  // Application: the store first (everything reads or writes it), then what uses it.
  await app.register(store)
  // Tracing next: @fastify/otel instruments the routes added after it, the ingest wraps the store's inbox.
  await app.register(tracing, { version: packageVersion(), spanProcessors })
  await app.register(metrics)
  await app.register(loadShedding)
  if (config.KAFKA_CONSUME) await app.register(kafkaConsumer, { afterInboxCommit: hooks?.afterInboxCommit })
  await app.register(reconcile)
  await app.register(pipeline)
  await app.register(retention)
  await app.register(auth)
  // Routes, documented by the OpenAPI plugin registered before them.
  await app.register(openapi, { version: packageVersion() })
  await app.register(health)
  await app.register(events)
  await app.register(sources)
  await app.register(diagnosis)
  await app.register(sysconfig)
  await app.register(availability)
  await app.register(operator)
  await app.register(tasks)
  await app.register(reconcileRoutes)
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX })
  return app
}
