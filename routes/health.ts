import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { metricsOnOwnPort } from '../src/plugins/app/metrics.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'

const Health = Type.Object({ status: Type.String() }, {
  additionalProperties: true,
  examples: [{ status: 'ready', processing: true, statusSink: 'kafka', rhsmMode: 'live', queuedEvents: 0, queues: 0, running: 0 }]
})
const Alive = Type.Object({
  status: Type.String({ examples: ['ok'] }),
  database: Type.Optional(Type.String({ description: 'What is wrong with an external database (DATABASE_URL) since when; absent while it answers' }))
}, { examples: [{ status: 'ok' }] })

export default async function health (app: FastifyInstance): Promise<void> {
  // The embedded database is this process's own: lost, only a restart (or an operator) brings it
  // back, so liveness fails. An external one may come back by itself: liveness reports, not fails.
  const { config } = app
  app.get('/healthz', {
    config: { keepsAnswering: true },
    schema: {
      tags: ['operations'],
      summary: 'The process is alive (and, with the embedded PostgreSQL, so is its database)',
      response: { 200: Alive, 503: Type.Unsafe({ $ref: 'Problem#' }) }
    }
  }, async (_request, reply) => {
    const problem = app.store.health.problem()
    if (problem === undefined) return { status: 'ok' }
    if (app.store.embedded) return sendProblem(reply, 503, `${problem.detail} (since ${problem.since})`)
    return { status: 'ok', database: `${problem.detail} (since ${problem.since})` }
  })

  app.get('/readyz', {
    config: { keepsAnswering: true },
    schema: {
      tags: ['operations'],
      summary: 'The database is reachable (Kafka is not required: the inbox keeps accepting events)',
      response: { 200: Health, 503: Type.Unsafe({ $ref: 'Problem#' }) }
    }
  }, async (request, reply) => {
    if (app.shuttingDown()) return sendProblem(reply, 503, 'shutting down', { 'retry-after': '5' })
    try {
      await app.store.stats.ping(2000)
    } catch (err) {
      // The driver's message can name hosts, users and settings: the log has it, the answer does not.
      request.log.warn({ error: (err as Error).message }, 'readiness: database unavailable')
      return sendProblem(reply, 503, 'database unavailable', { 'retry-after': '5' })
    }
    return {
      status: 'ready',
      processing: app.scheduler !== null,
      statusSink: config.statusSink,
      rhsmMode: config.RHSM_MODE,
      ...(app.scheduler ? app.scheduler.stats() : {})
    }
  })

  // With METRICS_PORT, the metrics plugin serves them there, and only there.
  if (metricsOnOwnPort(config)) return
  app.get('/metrics', { config: { keepsAnswering: true }, schema: { hide: true } }, async (_request, reply) => {
    return reply.type(app.metrics.registry.contentType).send(await app.metrics.registry.metrics())
  })
}
