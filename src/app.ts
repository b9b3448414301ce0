import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { SpanProcessor } from '@opentelemetry/sdk-trace-node'
import { pino, type DestinationStream } from 'pino'
import type { Config } from './config.js'
import { REDACTED_PATHS } from './log.js'
import kafkaConsumer from './plugins/kafka-consumer.js'
import loadShedding from './plugins/load-shedding.js'
import metrics from './plugins/metrics.js'
import openapi, { DOCS_PREFIX } from './plugins/openapi.js'
import pipeline from './plugins/pipeline.js'
import problem from './plugins/problem.js'
import pushPort from './plugins/push-port.js'
import retention from './plugins/retention.js'
import shutdown from './plugins/shutdown.js'
import store from './plugins/store.js'
import tracing from './plugins/tracing.js'
import availability from '../routes/availability.js'
import events from '../routes/events.js'
import health from '../routes/health.js'
import operator from '../routes/operator.js'
import sources from '../routes/sources.js'

// src/app.ts runs from the source tree in tests and from dist/src/app.js in production.
function packageVersion (): string {
  for (const path of ['../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { version: string }).version
    } catch {}
  }
  return '0.0.0'
}

export interface AppOptions {
  config: Config
  /** Where logs go (stdout when unset); tests capture them here. */
  logStream?: DestinationStream
  /** Span processors besides the OTLP exporter of the OTEL_* settings; tests pass an in-memory exporter's. */
  spanProcessors?: SpanProcessor[]
}

/** Builds the whole service; `server.ts` only listens. */
export async function buildApp ({ config, logStream, spanProcessors }: AppOptions): Promise<FastifyInstance> {
  const logger = pino({
    level: config.LOG_LEVEL,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' }
  }, logStream)
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    genReqId: () => randomUUID(),
    bodyLimit: 1024 * 1024,
    // Also bounds close hooks: the shutdown grace, then stopping PostgreSQL.
    pluginTimeout: config.SHUTDOWN_GRACE_MS + 20_000,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
    // The shutdown plugin answers with Retry-After, and from the start of the drain.
    return503OnClosing: false
  })

  await app.register(problem)
  await app.register(shutdown)
  await app.register(pushPort, { config })
  await app.register(store, { config })
  // Before the routes, which @fastify/otel instruments as they are added.
  await app.register(tracing, { config, version: packageVersion(), spanProcessors })
  await app.register(metrics, { config })
  await app.register(loadShedding, { config })
  if (config.KAFKA_CONSUME) await app.register(kafkaConsumer, { config })
  await app.register(pipeline, { config })
  await app.register(retention, { config })
  await app.register(openapi, { version: packageVersion() })
  await app.register(health, { config })
  await app.register(events, { config })
  await app.register(sources)
  await app.register(availability, { config })
  await app.register(operator, { config })
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX })
  return app
}
