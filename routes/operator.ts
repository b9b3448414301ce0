import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { checkEvent } from '../src/events/check.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { Nullable, ProblemRef, SourceParams } from '../src/schemas.js'

const DeadLetter = Type.Object({
  id: Type.Integer(),
  event_type: Type.String(),
  org_id: Type.String(),
  queue_key: Nullable(Type.String()),
  delivery_id: Nullable(Type.String()),
  attempts: Type.Integer(),
  last_error: Nullable(Type.String({ description: 'Why the last attempt failed' })),
  received_at: Type.String({ format: 'date-time' }),
  finished_at: Nullable(Type.String({ format: 'date-time' }))
})

const security: Array<Record<string, string[]>> = [{ bearer: [] }, { dapr: [] }]

/** Repair: what gave up, and how to run it again. INTERNAL_TOKEN or the push token; never an identity alone. */
export default async function operator (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', app.auth.internal)

  app.get('/internal/v1/dead-letters', {
    schema: {
      tags: ['operations'],
      summary: 'Events that ran out of attempts (each reported CR5000 for its application)',
      security,
      querystring: Type.Object({
        limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
        offset: Type.Integer({ minimum: 0, default: 0 })
      }, { additionalProperties: false }),
      response: {
        200: Type.Object({ meta: Type.Object({ count: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() }), data: Type.Array(DeadLetter) }),
        400: ProblemRef,
        401: ProblemRef
      }
    }
  }, async (request) => {
    const { limit, offset } = request.query
    const { count, data } = await app.store.inbox.deadLetters(limit, offset)
    return {
      meta: { count, limit, offset },
      data: data.map(e => ({
        id: e.id,
        event_type: e.eventType,
        org_id: e.orgId,
        queue_key: e.queueKey,
        delivery_id: e.deliveryId,
        attempts: e.attempts,
        last_error: e.lastError,
        received_at: e.receivedAt.toISOString(),
        finished_at: e.finishedAt?.toISOString() ?? null
      }))
    }
  })

  app.post('/internal/v1/events/:id/replay', {
    schema: {
      tags: ['operations'],
      summary: 'Run an ended event again, as a new event behind its source\'s others',
      security,
      params: Type.Object({ id: Type.Integer({ minimum: 1 }) }),
      response: {
        202: Type.Object({ replayed_as: Type.Integer({ description: 'The id of the new event' }) }),
        400: ProblemRef,
        401: ProblemRef,
        404: ProblemRef,
        409: ProblemRef
      }
    }
  }, async (request, reply) => {
    const result = await app.store.inbox.replay(request.params.id)
    if (result === null) return sendProblem(reply, 404, `no event ${request.params.id}`)
    if (result === 'pending') return sendProblem(reply, 409, `event ${request.params.id} has not ended yet`)
    request.log.info({ eventId: request.params.id, replayedAs: result }, 'event replayed')
    return reply.code(202).send({ replayed_as: result! })
  })

  app.post('/internal/v1/sources/:source_id/reverify', {
    schema: {
      tags: ['operations'],
      summary: 'Queue a re-verification of a source (skipped while it is paused or removed)',
      security,
      params: SourceParams,
      response: { 202: { description: 'Queued', type: 'null' }, 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
    }
  }, async (request, reply) => {
    const registration = await app.store.registrations.findBySourceInAnyOrg(request.params.source_id)
    if (registration === null) return sendProblem(reply, 404, `source ${request.params.source_id} has no registration`)
    await app.store.inbox.append([checkEvent({ orgId: registration.orgId, accountNumber: registration.accountNumber }, registration.sourceId, 'operator')])
    return reply.code(202).send()
  })
}
