import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { sendProblem } from './problem.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** True from the start of close: pushes and other work are turned away, probes keep answering. */
    shuttingDown: () => boolean
  }
}

const RETRY_AFTER_S = '5'

/**
 * A closing replica answers 503 with Retry-After to everything but probes and
 * status reads, so that a bridge sends its next push to another replica while
 * this one drains; Fastify's own 503 would come without Retry-After, and only
 * after the drain.
 */
async function shutdown (app: FastifyInstance): Promise<void> {
  let closing = false
  app.decorate('shuttingDown', () => closing)
  // The first preClose of the app (src/app.ts says why the order matters).
  app.addHook('preClose', async () => { closing = true })
  app.addHook('onRequest', async (request, reply) => {
    if (!closing || request.routeOptions.config.keepsAnswering === true) return
    reply.header('connection', 'close')
    return sendProblem(reply, 503, 'this replica is shutting down; retry later (another replica may take it)', { 'retry-after': RETRY_AFTER_S })
  })
}

export default fp(shutdown, { name: 'shutdown' })
