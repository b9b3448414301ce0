import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { appKey, sourceKey } from '../src/events/keys.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { REGISTRATION_STATES, type Registration } from '../src/store/registrations.js'
import { ProblemRef, SourceParams } from '../src/schemas.js'

const PREFIX = '/api/cloudoreg/v1'

const State = Type.Union(REGISTRATION_STATES.map(s => Type.Literal(s)), {
  description: 'pending: accepted, not decided · registered: verified, mapped, available reported · ' +
    'unavailable: a coded error was reported · paused · removed: mapping deleted'
})

const SourceStatus = Type.Object({
  source_id: Type.String(),
  application_id: Type.String(),
  authentication_id: Type.Union([Type.String(), Type.Null()]),
  org_id: Type.String(),
  account_number: Type.Union([Type.String(), Type.Null()]),
  aws_account_id: Type.Union([Type.String(), Type.Null()], { description: '12 digits' }),
  role_arn: Type.Union([Type.String(), Type.Null()]),
  state: State,
  mapped: Type.Boolean({ description: 'RHSM holds the provider-account mapping' }),
  availability_status: Type.Union([Type.Literal('available'), Type.Literal('unavailable'), Type.Null()], {
    description: 'What cloudoreg last reported (or will report) to sources-api'
  }),
  error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }), Type.Null()]),
  attempts: Type.Integer({ description: 'Attempts the latest event needed' }),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  verified_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()])
}, { $id: 'SourceStatus' })

type SourceStatusBody = Static<typeof SourceStatus>

const ListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  offset: Type.Integer({ minimum: 0, default: 0 }),
  state: Type.Optional(State)
}, { additionalProperties: false })

const SourceList = Type.Object({
  meta: Type.Object({ count: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() }),
  links: Type.Object({
    first: Type.String(),
    last: Type.String(),
    next: Type.Union([Type.String(), Type.Null()]),
    previous: Type.Union([Type.String(), Type.Null()])
  }),
  data: Type.Array(Type.Unsafe<SourceStatusBody>({ $ref: 'SourceStatus#' }))
})

const HISTORY_LIMIT = 1000

const SourceHistory = Type.Object({
  source_id: Type.String(),
  application_id: Type.String(),
  events: Type.Array(Type.Object({
    id: Type.Integer(),
    event_type: Type.String(),
    received_at: Type.String({ format: 'date-time' }),
    state: Type.String({ description: 'pending, done, ignored or dead' }),
    outcome: Type.Union([Type.String({ description: 'What was done, or the error code reported' }), Type.Null()]),
    attempts: Type.Integer(),
    last_error: Type.Union([Type.String({ description: 'Why the last failed attempt failed (upstream outcome)' }), Type.Null()]),
    finished_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    trace_id: Type.Union([Type.String({ pattern: '^[0-9a-f]{32}$', description: 'W3C trace id of the event\'s ingest and processing: search the trace backend (Jaeger, Tempo) and the logs for it' }), Type.Null()]),
    role_session_name: Type.Union([Type.String({ description: 'STS RoleSessionName the event\'s verification assumed the customer\'s role under: the AssumeRole entry in their CloudTrail shows it' }), Type.Null()])
  }), { description: `Oldest first, at most ${HISTORY_LIMIT}` }),
  statuses: Type.Array(Type.Object({
    status: Type.String(),
    error: Type.String(),
    decided_at: Type.String({ format: 'date-time' }),
    sent_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    superseded: Type.Boolean({ description: 'A newer status was sent instead' })
  }), { description: 'Statuses reported to sources-api, oldest first' })
})

function toBody (r: Registration): SourceStatusBody {
  const availability = r.state === 'registered' ? 'available' : r.state === 'unavailable' ? 'unavailable' : null
  return {
    source_id: r.sourceId,
    application_id: r.applicationId,
    authentication_id: r.authenticationId,
    org_id: r.orgId,
    account_number: r.accountNumber,
    aws_account_id: r.awsAccountId,
    role_arn: r.roleArn,
    state: r.state,
    mapped: r.mapped,
    availability_status: availability,
    error: r.lastErrorCode !== null ? { code: r.lastErrorCode, message: r.lastErrorMessage ?? '' } : null,
    attempts: r.attempts,
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
    verified_at: r.verifiedAt?.toISOString() ?? null
  }
}

/** The status API: what cloudoreg knows of each source, scoped to the caller's org. */
export default async function sources (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addSchema(SourceStatus)
  app.addHook('onRequest', app.auth.identity)

  const security = [{ identity: [] }]

  app.get(`${PREFIX}/sources`, {
    config: { keepsAnswering: true },
    schema: {
      tags: ['status'],
      summary: 'Registration status of the sources of your org',
      security,
      querystring: ListQuery,
      response: { 200: SourceList, 400: ProblemRef, 401: ProblemRef }
    }
  }, async (request) => {
    const { limit, offset, state } = request.query
    const { count, data } = await app.store.registrations.list({ orgId: request.tenant.orgId, state, limit, offset })
    const link = (o: number): string => `${PREFIX}/sources?limit=${limit}&offset=${o}${state ? `&state=${state}` : ''}`
    const lastOffset = count === 0 ? 0 : Math.floor((count - 1) / limit) * limit
    return {
      meta: { count, limit, offset },
      links: {
        first: link(0),
        last: link(lastOffset),
        next: offset + limit < count ? link(offset + limit) : null,
        previous: offset > 0 ? link(Math.max(0, offset - limit)) : null
      },
      data: data.map(toBody)
    }
  })

  app.get(`${PREFIX}/sources/:source_id`, {
    config: { keepsAnswering: true },
    schema: {
      tags: ['status'],
      summary: 'Registration status of one source',
      security,
      params: SourceParams,
      response: { 200: Type.Unsafe<SourceStatusBody>({ $ref: 'SourceStatus#' }), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
    }
  }, async (request, reply) => {
    const { source_id: sourceId } = request.params
    const registration = await app.store.registrations.findBySource(request.tenant.orgId, sourceId)
    // Another org's source is indistinguishable from one that does not exist.
    if (registration === null) return sendProblem(reply, 404, `source ${sourceId} has no registration in your org`)
    return toBody(registration)
  })

  app.get(`${PREFIX}/sources/:source_id/history`, {
    config: { keepsAnswering: true },
    schema: {
      tags: ['status'],
      summary: 'Timeline of one source: every event received, what was done, the statuses reported',
      security,
      params: SourceParams,
      response: { 200: SourceHistory, 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
    }
  }, async (request, reply) => {
    const { source_id: sourceId } = request.params
    const registration = await app.store.registrations.findBySource(request.tenant.orgId, sourceId)
    if (registration === null) return sendProblem(reply, 404, `source ${sourceId} has no registration in your org`)
    const [events, statuses] = await Promise.all([
      app.store.inbox.eventsOf(request.tenant.orgId, [appKey(registration.applicationId), sourceKey(sourceId)], HISTORY_LIMIT),
      app.store.outbox.statusesOf(request.tenant.orgId, registration.applicationId, HISTORY_LIMIT)
    ])
    return {
      source_id: sourceId,
      application_id: registration.applicationId,
      events: events.map(e => ({
        id: e.id,
        event_type: e.eventType,
        received_at: e.receivedAt.toISOString(),
        state: e.state,
        outcome: e.outcome,
        attempts: e.attempts,
        last_error: e.lastError,
        finished_at: e.finishedAt?.toISOString() ?? null,
        trace_id: e.traceId,
        role_session_name: e.roleSessionName
      })),
      statuses: statuses.map(s => ({
        status: s.status,
        error: s.error,
        decided_at: s.createdAt.toISOString(),
        sent_at: s.sentAt?.toISOString() ?? null,
        superseded: s.superseded
      }))
    }
  })
}
