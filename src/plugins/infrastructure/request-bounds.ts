import { Socket } from 'node:net'
import { Transform } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../../config.js'

type Limits = Pick<Config, 'MAX_BODY_BYTES_IN_FLIGHT' | 'HTTP_IDLE_TIMEOUT_MS'>

/**
 * The socket idle timeout (HTTP_IDLE_TIMEOUT_MS, set on every port by boundServer) is meant for
 * the client's silence: a stalled body, an idle keep-alive. Once the request is in, the silence is
 * ours (a push waiting for its commit), so it is lifted until the answer is sent.
 */
function idleWhileHandling (app: FastifyInstance, limits: Limits): void {
  // Only a real connection has a timeout (fastify.inject's stand-in has none).
  const setIdle = (request: FastifyRequest, ms: number): void => {
    if (request.raw.socket instanceof Socket) request.raw.socket.setTimeout(ms)
  }
  app.addHook('preHandler', async request => { setIdle(request, 0) })
  app.addHook('onResponse', async request => { setIdle(request, limits.HTTP_IDLE_TIMEOUT_MS) })
}

/**
 * One budget for the request bodies being read or held, across every request on every port: a
 * body counts from its first byte until its answer is sent or its connection is gone. Past the
 * budget a request is answered 503 with Retry-After and its connection closed, so that slow or
 * stalled uploads (30 of 4 MB would be 120 MB) cannot take the pod to its memory limit.
 */
function bodyBudget (app: FastifyInstance, config: Limits): void {
  let inFlight = 0
  app.addHook('preParsing', async (request, reply, payload) => {
    let counted = 0
    let released = false
    reply.raw.once('close', () => {
      if (released) return
      released = true
      inFlight -= counted
    })
    const counter = new Transform({
      transform (chunk: Buffer, _encoding, done) {
        if (released) return done()
        counted += chunk.length
        inFlight += chunk.length
        if (inFlight <= config.MAX_BODY_BYTES_IN_FLIGHT) return done(null, chunk)
        reply.header('connection', 'close')
        request.log.warn({ inFlight, limit: config.MAX_BODY_BYTES_IN_FLIGHT }, 'request bodies over their budget')
        done(Object.assign(new Error('too many request bodies in flight; retry later'), { statusCode: 503 }))
      }
    })
    payload.once('error', err => counter.destroy(err))
    return payload.pipe(counter)
  })
}

async function requestBounds (app: FastifyInstance): Promise<void> {
  idleWhileHandling(app, app.config)
  bodyBudget(app, app.config)
}

export default fp(requestBounds, { name: 'request-bounds', dependencies: ['config'] })
