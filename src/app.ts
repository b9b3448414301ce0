import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import swaggerUi from '@fastify/swagger-ui'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import type { DestinationStream } from 'pino'
import type { Config } from './config.js'
import { createLogger } from './log.js'
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

export interface AppOptions {
  config: Config
  /** Where logs go (stdout when unset); tests capture them here. */
  logStream?: DestinationStream
}

/** Builds the whole service; `server.ts` only listens. */
export async function buildApp ({ config, logStream }: AppOptions): Promise<FastifyInstance> {
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

  await app.register(problem)
  await app.register(shutdown)
  await app.register(pushPort, { config })
  await app.register(store, { config })
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
