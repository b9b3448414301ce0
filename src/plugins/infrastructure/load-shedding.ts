import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

const RETRY_AFTER_S = 5
const CHECK_EVERY_MS = 5000

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Keep answering under pressure: status routes and probes. */
    keepsAnswering?: boolean
  }
}

const reasons: Record<string, string> = {
  eventLoopDelay: 'the event loop is overloaded',
  heapUsedBytes: 'memory is over its limit',
  healthCheck: 'the inbox backlog is over MAX_BACKLOG or the database is unreachable'
}

/**
 * 503 with Retry-After for work that a sender can retry (pushes, checks, repair)
 * when the event loop, the heap or the inbox backlog is over its limit. A pushed
 * event answered 503 is not stored: the sender's retry is the only copy.
 */
async function loadShedding (app: FastifyInstance): Promise<void> {
  const { config } = app
  await app.register(underPressure, {
    maxEventLoopDelay: 1000,
    maxHeapUsedBytes: 1024 * 1024 * 1024,
    retryAfter: RETRY_AFTER_S,
    healthCheckInterval: CHECK_EVERY_MS,
    async healthCheck () {
      return !(await app.store.stats.backlogOver(config.MAX_BACKLOG))
    },
    // A rejection goes to the error handler, which answers 503 problem+json with Retry-After.
    async pressureHandler (request: FastifyRequest, _reply: FastifyReply, type: string) {
      if (request.routeOptions.config.keepsAnswering === true) return
      throw Object.assign(new Error(`${reasons[type] ?? type}; retry later`), { statusCode: 503 })
    }
  })
}

export default fp(loadShedding, { name: 'load-shedding', dependencies: ['store'] })
