import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import { metricsOnOwnPort } from '../src/plugins/app/metrics.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'

const Health = Type.Object({ status: Type.String() }, { additionalProperties: true })

export default async function health (app: FastifyInstance): Promise<void> {
  const { config } = app
  app.get('/healthz', {
    config: { keepsAnswering: true },
    schema: { tags: ['operations'], summary: 'The process is alive', response: { 200: Health } }
  }, async () => ({ status: 'ok' }))

  app.get('/readyz', {
    config: { keepsAnswering: true },
    schema: {
      tags: ['operations'],
      summary: 'The database is reachable (Kafka is not required: the inbox keeps accepting events)',
      response: { 200: Health, 503: Type.Unsafe({ $ref: 'Problem#' }) }
    }
  }, async (_request, reply) => {
    if (app.shuttingDown()) return sendProblem(reply, 503, 'shutting down', { 'retry-after': '5' })
    try {
      await app.store.stats.ping(2000)
    } catch (err) {
      return sendProblem(reply, 503, `database unreachable: ${(err as Error).message}`, { 'retry-after': '5' })
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
