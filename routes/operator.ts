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

const ParkedStatus = Type.Object({
  id: Type.Integer(),
  application_id: Type.String(),
  org_id: Type.String(),
  status: Type.String({ description: 'available or unavailable' }),
  error: Type.String({ description: 'The error text the message carries' }),
  attempts: Type.Integer({ description: 'Failed sends' }),
  last_error: Nullable(Type.String({ description: 'Why the last send failed' })),
  created_at: Type.String({ format: 'date-time' }),
  parked_at: Type.String({ format: 'date-time' })
})

const Page = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  offset: Type.Integer({ minimum: 0, maximum: 2147483647, default: 0 })
}, { additionalProperties: false })
const PageMeta = Type.Object({ count: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() })

const security: Array<Record<string, string[]>> = [{ bearer: [] }]

/**
 * Repair: what gave up, and how to run it again. INTERNAL_TOKEN only: not the push token (a bridge
 * may push, not replay or re-verify), never an identity.
 */
export default async function operator (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', app.auth.internal)

  app.get('/internal/v1/dead-letters', {
    schema: {
      tags: ['operations'],
      summary: 'Events that ran out of attempts (each reported CR5000 for its application)',
      security,
      querystring: Page,
      response: {
        200: Type.Object({ meta: PageMeta, data: Type.Array(DeadLetter) }),
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

  app.delete('/internal/v1/tombstones/:application_id', {
    schema: {
      tags: ['operations'],
      summary: 'Lift the tombstone of a destroyed application, so that a create may register it again',
      description: 'A destroyed application keeps a tombstone so that a late create never maps it again. Lift it when the ' +
        'destruction was a mistake (or a forgery): the next create runs the create flow. Each lifted tombstone is written into ' +
        'the history of its org\'s source. `org_id` narrows it to one org\'s tombstone.',
      security,
      params: Type.Object({ application_id: Type.String({ pattern: '^[0-9]{1,20}$', description: 'sources-api application id' }) }),
      querystring: Type.Object({ org_id: Type.Optional(Type.String({ pattern: '^[0-9]{1,20}$' })) }, { additionalProperties: false }),
      response: {
        200: Type.Object({
          lifted: Type.Array(Type.Object({ application_id: Type.String(), source_id: Nullable(Type.String()), org_id: Type.String() }))
        }),
        400: ProblemRef,
        401: ProblemRef,
        404: ProblemRef
      }
    }
  }, async (request, reply) => {
    const { application_id: applicationId } = request.params
    const lifted = await app.store.registrations.liftTombstones(applicationId, request.query.org_id, `tombstone lifted by an operator (request ${request.id})`)
    if (lifted.length === 0) return sendProblem(reply, 404, `application ${applicationId} has no tombstone`)
    request.log.warn({ applicationId, orgs: lifted.map(l => l.orgId) }, 'tombstone lifted by an operator')
    return { lifted: lifted.map(l => ({ application_id: l.applicationId, source_id: l.sourceId, org_id: l.orgId })) }
  })

  app.get('/internal/v1/status-messages/parked', {
    schema: {
      tags: ['operations'],
      summary: 'Status messages that could not be delivered after STATUS_MAX_ATTEMPTS sends (or could never be), with the last error',
      security,
      querystring: Page,
      response: {
        200: Type.Object({ meta: PageMeta, data: Type.Array(ParkedStatus) }),
        400: ProblemRef,
        401: ProblemRef
      }
    }
  }, async (request) => {
    const { limit, offset } = request.query
    const { count, data } = await app.store.outbox.parked(limit, offset)
    return {
      meta: { count, limit, offset },
      data: data.map(m => ({
        id: m.id,
        application_id: m.applicationId,
        org_id: m.orgId,
        status: m.status,
        error: m.error,
        attempts: m.attempts,
        last_error: m.lastError,
        created_at: m.createdAt.toISOString(),
        parked_at: m.parkedAt.toISOString()
      }))
    }
  })

  app.post('/internal/v1/status-messages/:id/retry', {
    schema: {
      tags: ['operations'],
      summary: 'Send a parked status message again (unless a newer status of its application is sent first)',
      security,
      params: Type.Object({ id: Type.Integer({ minimum: 1, maximum: 9007199254740991 }) }),
      response: { 202: { description: 'Queued for the relay', type: 'null' }, 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
    }
  }, async (request, reply) => {
    if (!await app.store.outbox.retryParked(request.params.id)) return sendProblem(reply, 404, `no parked status message ${request.params.id}`)
    request.log.info({ statusId: request.params.id }, 'parked status message queued again')
    return reply.code(202).send()
  })
}
