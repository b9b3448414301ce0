import { getHeapStatistics } from 'node:v8'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'

const RETRY_AFTER_S = 5
const CHECK_EVERY_MS = 5000
/**
 * Of V8's heap limit (old space, as --max-old-space-size sets it, plus about 48 MB of young
 * space): under the shipped 192 MB that is 168 MB of the 240 MB limit, still short of the old
 * space's own 192 MB, where V8 would give up.
 */
const HEAP_SHED_FRACTION = 0.7

/** The heap use over which work is shed: below the process's real heap limit, whatever it was started with. */
export function heapShedBytes (): number {
  return Math.floor(getHeapStatistics().heap_size_limit * HEAP_SHED_FRACTION)
}

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
  const maxHeapUsedBytes = heapShedBytes()
  app.log.info({ heapLimitBytes: getHeapStatistics().heap_size_limit, maxHeapUsedBytes }, 'load shedding: heap threshold')
  await app.register(underPressure, {
    maxEventLoopDelay: config.MAX_EVENT_LOOP_DELAY_MS,
    maxHeapUsedBytes,
    retryAfter: RETRY_AFTER_S,
    healthCheckInterval: CHECK_EVERY_MS,
    async healthCheck () {
      // Lost, the database is reported once by its health monitor; under-pressure would log each check.
      if (app.store.health.down()) return false
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
