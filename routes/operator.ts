import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { checkEvent, describeEvent } from '../src/events/check.js'
import { attemptBody } from '../src/http/attempts.js'
import { DeadLetterFilters, filterOf, filterParams } from '../src/http/dead-letter-filter.js'
import { EVENT_ID_HEADER } from '../src/http/headers.js'
import { pageOf } from '../src/http/pagination.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { Attempt, Nullable, Page, PageQuery, ProblemRef, SourceParams } from '../src/schemas.js'
import type { EventRecord } from '../src/store/inbox.js'

const StoredEvent = Type.Object({
  id: Type.Integer({ examples: [1] }),
  event_type: Type.String({ examples: ['ApplicationAuthentication.create'] }),
  description: Type.String({ description: 'The event in words: who asked for a check, which event a replay copies', examples: ['ApplicationAuthentication.create'] }),
  org_id: Type.String({ examples: ['7654321'] }),
  source_id: Nullable(Type.String({ description: 'Named by the event, learnt from sources-api while running it, or that of the registration on its queue; null when nobody knows', examples: ['7'] })),
  queue_key: Nullable(Type.String({ examples: ['app:42'] })),
  delivery_id: Nullable(Type.String()),
  state: Type.String({ description: 'pending, done, ignored or dead', examples: ['dead'] }),
  outcome: Nullable(Type.String({ description: 'What was done, or the error code reported', examples: ['CR5000'] })),
  attempts: Type.Integer({ examples: [12] }),
  last_error: Nullable(Type.String({ description: 'Why the last attempt failed', examples: ['sts: AssumeRole failed: ServiceUnavailable'] })),
  next_attempt_at: Nullable(Type.String({ format: 'date-time', description: 'While pending: when the next attempt runs' })),
  received_at: Type.String({ format: 'date-time' }),
  finished_at: Nullable(Type.String({ format: 'date-time' })),
  replay_of: Nullable(Type.Integer({ description: 'This event is a replay of that one' })),
  replayed_as: Nullable(Type.Integer({ description: 'This event was replayed as that one' }))
}, { $id: 'StoredEvent' })

const DeadLetterItem = Type.Intersect([Type.Unsafe<StoredEventBody>({ $ref: 'StoredEvent#' }), Type.Object({
  last_attempt: Nullable(Type.Object({
    upstream: Nullable(Type.String({ examples: ['rhsm'] })),
    step: Nullable(Type.String({ examples: ['RHSM'] })),
    http_status: Nullable(Type.Integer({ examples: [503] })),
    error_code: Nullable(Type.String({ examples: ['HTTP 503'] }))
  }, { description: 'What the attempt that gave up met (null for events that gave up before attempts were recorded)' }))
})])

const StoredEventRef = Type.Unsafe<StoredEventBody>({ $ref: 'StoredEvent#' })
type StoredEventBody = Static<typeof StoredEvent>

function toBody (e: EventRecord): StoredEventBody {
  return {
    id: e.id,
    event_type: e.eventType,
    description: describeEvent(e),
    org_id: e.orgId,
    source_id: e.sourceId,
    queue_key: e.queueKey,
    delivery_id: e.deliveryId,
    state: e.state,
    outcome: e.outcome,
    attempts: e.attempts,
    last_error: e.lastError,
    next_attempt_at: e.state === 'pending' ? e.nextAttemptAt.toISOString() : null,
    received_at: e.receivedAt.toISOString(),
    finished_at: e.finishedAt?.toISOString() ?? null,
    replay_of: e.replayOf,
    replayed_as: e.replayedAs
  }
}

// inbox.id is a bigint: a larger number would reach PostgreSQL as "1e+21" (a 500).
const EventParams = Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER, description: 'The event id, as the push reply\'s cloudoreg-event-id header gave it', examples: [1] }) })

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

const security: Array<Record<string, string[]>> = [{ bearer: [] }]

/**
 * Repair: what gave up, and how to run it again. INTERNAL_TOKEN only: not the push token (a bridge
 * may push, not replay or re-verify), never an identity.
 */
export default async function operator (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', app.auth.internal)

  app.addSchema(StoredEvent)

  app.get('/internal/v1/dead-letters', {
    schema: {
      tags: ['operations'],
      summary: 'Events that ran out of attempts (each reported CR5000 for its application)',
      description: 'Oldest first. A dead letter that was replayed carries `replayed_as` and leaves this list unless `include_replayed=true`. ' +
        'The filters are those of `POST /internal/v1/dead-letters/replay`.',
      security,
      querystring: Type.Object({
        ...PageQuery,
        include_replayed: Type.Boolean({ default: false, description: 'Also list the dead letters already replayed' }),
        ...DeadLetterFilters
      }, { additionalProperties: false }),
      response: {
        200: Page(DeadLetterItem, 'Dead letters, oldest first'),
        400: ProblemRef,
        401: ProblemRef
      }
    }
  }, async (request) => {
    const { limit, offset, include_replayed: includeReplayed } = request.query
    const { count, data } = await app.store.deadLetters.list(filterOf(request.query), includeReplayed, limit, offset)
    const extra = { include_replayed: includeReplayed ? 'true' : undefined, ...filterParams(request.query) }
    return {
      ...pageOf('/internal/v1/dead-letters', count, limit, offset, extra),
      data: data.map(d => ({
        ...toBody(d),
        last_attempt: d.lastAttempt === null
          ? null
          : { upstream: d.lastAttempt.upstream, step: d.lastAttempt.step, http_status: d.lastAttempt.httpStatus, error_code: d.lastAttempt.errorCode }
      }))
    }
  })

  app.get('/internal/v1/events/:id', {
    schema: {
      tags: ['operations'],
      summary: 'One stored event by id, in any org, whether or not it concerns a known source',
      description: 'For the event id a push reply gave (`cloudoreg-event-id`): what became of it, including events that ended ' +
        'without any source (an application of another type, no ids in the body).',
      security,
      params: EventParams,
      response: {
        200: Type.Intersect([StoredEventRef, Type.Object({
          body: Type.Record(Type.String(), Type.Unknown(), { description: 'The event as stored' }),
          attempt_history: Type.Array(Attempt, { description: 'Every attempt of the event, in order' })
        })]),
        400: ProblemRef,
        401: ProblemRef,
        404: ProblemRef
      }
    }
  }, async (request, reply) => {
    const event = await app.store.inbox.get(request.params.id)
    if (event === null) return sendProblem(reply, 404, `no event ${request.params.id} (never stored, or pruned after RETENTION_DAYS)`)
    const attempts = await app.store.attemptsOf([event.id])
    return { ...toBody(event), body: event.body, attempt_history: (attempts.get(event.id) ?? []).map(attemptBody) }
  })

  app.post('/internal/v1/events/:id/replay', {
    schema: {
      tags: ['operations'],
      summary: 'Run an ended event again, as a new event behind its source\'s others',
      description: 'The original is marked `replayed_as` the new event (and leaves the dead-letter list); an event is replayed once: ' +
        'to run it again, replay the replay.',
      security,
      params: EventParams,
      response: {
        202: Type.Object({ replayed_as: Type.Integer({ description: 'The id of the new event', examples: [2] }) }, {
          description: 'Stored; the header cloudoreg-event-id names the new event too'
        }),
        400: ProblemRef,
        401: ProblemRef,
        404: ProblemRef,
        409: ProblemRef
      }
    }
  }, async (request, reply) => {
    const { id } = request.params
    const result = await app.store.inbox.replay(id)
    if (!result.ok) {
      if (result.reason === 'not_found') return sendProblem(reply, 404, `no event ${id}`)
      if (result.reason === 'pending') return sendProblem(reply, 409, `event ${id} has not ended yet`)
      return sendProblem(reply, 409, `event ${id} was already replayed as event ${result.replayedAs}; replay that one to run it again`)
    }
    request.log.info({ eventId: id, replayedAs: result.id }, 'event replayed')
    return reply.code(202).header(EVENT_ID_HEADER, String(result.id)).send({ replayed_as: result.id })
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
    const [id] = await app.store.inbox.append([checkEvent({ orgId: registration.orgId, accountNumber: registration.accountNumber }, registration.sourceId, 'operator')])
    return reply.code(202).header(EVENT_ID_HEADER, String(id)).send()
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
      querystring: Type.Object(PageQuery, { additionalProperties: false }),
      response: {
        200: Page(ParkedStatus, 'Parked status messages, oldest first'),
        400: ProblemRef,
        401: ProblemRef
      }
    }
  }, async (request) => {
    const { limit, offset } = request.query
    const { count, data } = await app.store.outbox.parked(limit, offset)
    return {
      ...pageOf('/internal/v1/status-messages/parked', count, limit, offset),
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
