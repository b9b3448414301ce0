import { Type, type Static } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { missingUpstreamSettings } from '../src/config.js'
import { describeEvent } from '../src/events/check.js'
import { applicationOfKey } from '../src/events/keys.js'
import { attemptBody } from '../src/http/attempts.js'
import { pageOf } from '../src/http/pagination.js'
import { queueKeysOf, viewSource, waitingFor, type SourceView } from '../src/http/source-view.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { REGISTRATION_STATES, type Registration } from '../src/store/registrations.js'
import { Attempt, Nullable, Page, PageQuery, ProblemRef, SourceParams } from '../src/schemas.js'

const PREFIX = '/api/cloudoreg/v1'

const EXAMPLE = {
  source_id: '7',
  application_id: '42',
  authentication_id: '311',
  org_id: '7654321',
  account_number: '1234567',
  aws_account_id: '123456789012',
  role_arn: 'arn:aws:iam::123456789012:role/redhat-cloud-meter',
  state: 'registered',
  mapped: true,
  availability_status: 'available',
  error: null,
  attempts: 1,
  created_at: '2026-08-20T10:00:01.204Z',
  updated_at: '2026-08-20T10:00:01.532Z',
  verified_at: '2026-08-20T10:00:01.529Z'
}

const State = Type.Union(REGISTRATION_STATES.map(s => Type.Literal(s)), {
  description: 'pending: accepted, not decided · registered: verified, mapped, available reported · ' +
    'unavailable: a coded error was reported · paused · removed: mapping deleted'
})

const Waiting = Type.Object({
  events: Type.Integer({ description: 'Events of this source not finished yet', examples: [1] }),
  event_ids: Type.Array(Type.Integer(), { description: 'Their ids, oldest first (at most 100)', examples: [[1]] }),
  since: Type.String({ format: 'date-time', description: 'When the oldest arrived' }),
  reason: Type.String({
    description: 'What they wait for, in words',
    examples: ['upstreams not configured: SOURCES_API_URL, SOURCES_PSK, RHSM_API_URL; the events wait until they are',
      'retrying at 2026-08-20T10:01:00.000Z after attempt 2 failed: sts: AssumeRole failed: ServiceUnavailable']
  }),
  next_attempt_at: Nullable(Type.String({ format: 'date-time', description: 'When the oldest runs next' }))
}, { description: 'Events of this source that are waiting or running; null when none' })

const SourceStatus = Type.Object({
  source_id: Type.String({ examples: ['7'] }),
  application_id: Nullable(Type.String({ description: 'null while no event of the source has been read from sources-api yet', examples: ['42'] })),
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
  verified_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  waiting: Nullable(Waiting)
}, {
  $id: 'SourceStatus',
  description: 'A source as cloudoreg knows it; `pending` with `waiting` while its events have not finished',
  examples: [{ ...EXAMPLE, waiting: null }]
})

type SourceStatusBody = Static<typeof SourceStatus>

const ListQuery = Type.Object({ ...PageQuery, state: Type.Optional(State) }, { additionalProperties: false })

const SourceList = Page(Type.Unsafe<SourceStatusBody>({ $ref: 'SourceStatus#' }), 'The sources of your org, ordered by source id')

const HISTORY_LIMIT = 1000

const EventEntry = Type.Object({
  kind: Type.Literal('event'),
  at: Type.String({ format: 'date-time', description: 'When the event arrived' }),
  event_id: Type.Integer({ examples: [1] }),
  event_type: Type.String({ examples: ['cloudoreg.check'] }),
  description: Type.String({
    description: 'The event in words: an availability check by sources-api, a re-verification requested by an operator, ' +
      'a check requested by the customer, a replay',
    examples: ['re-verification requested by an operator']
  }),
  state: Type.String({ description: 'pending, done, ignored or dead' }),
  outcome: Nullable(Type.String({ description: 'What was done, or the error code reported' })),
  attempts: Type.Integer(),
  last_error: Nullable(Type.String({ description: 'Why the last failed attempt failed (upstream outcome)' })),
  finished_at: Nullable(Type.String({ format: 'date-time' })),
  trace_id: Nullable(Type.String({
    pattern: '^[0-9a-f]{32}$',
    description: 'W3C trace id of the event\'s ingest and processing: search the trace backend (Jaeger, Tempo) and the logs for it'
  })),
  role_session_name: Nullable(Type.String({
    description: 'STS RoleSessionName the event\'s verification assumed the customer\'s role under: the AssumeRole entry in their CloudTrail shows it'
  })),
  attempt_history: Type.Optional(Type.Array(Attempt, {
    description: 'With `attempts=true`: every attempt of the event, in order (when, how long, which upstream call failed and how, which replica)'
  }))
})

const StatusEntry = Type.Object({
  kind: Type.Literal('status'),
  at: Type.String({ format: 'date-time', description: 'When the status was decided' }),
  status: Type.String({ examples: ['available'] }),
  error: Type.String(),
  sent_at: Nullable(Type.String({ format: 'date-time' })),
  superseded: Type.Boolean({ description: 'A newer status was sent instead' })
})

const HistoryQuery = Type.Object({
  attempts: Type.Boolean({ default: false, description: 'Include every attempt of each event (`attempt_history`)' })
}, { additionalProperties: false })

const SourceHistory = Type.Object({
  source_id: Type.String({ examples: ['7'] }),
  application_id: Nullable(Type.String({ examples: ['42'] })),
  timeline: Type.Array(Type.Union([EventEntry, StatusEntry]), {
    description: `Events received and statuses reported, in time order (at most ${HISTORY_LIMIT} of each)`
  }),
  audit: Type.Array(Type.Object({
    at: Type.String({ format: 'date-time' }),
    action: Type.String({ description: 'refused: an event of another org named this application and changed nothing · tombstone_lifted: an operator allowed the application to be registered again' }),
    event_id: Nullable(Type.Integer({ description: 'The refused event (also in the timeline)' })),
    detail: Type.String()
  }), { description: 'What happened to the registration besides its org\'s own events, oldest first' })
})

function registrationBody (r: Registration): Omit<SourceStatusBody, 'waiting'> {
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

/** A source with no registration yet: what its waiting events say of it. */
function waitingBody (view: SourceView, orgId: string): Omit<SourceStatusBody, 'waiting'> {
  const first = view.pending[0]
  const app = view.pending.map(e => applicationOfKey(e.queueKey)).find(a => a !== null) ?? null
  return {
    source_id: view.sourceId,
    application_id: app,
    authentication_id: null,
    org_id: orgId,
    account_number: null,
    aws_account_id: null,
    role_arn: null,
    state: 'pending',
    mapped: false,
    availability_status: null,
    error: null,
    attempts: first.attempts,
    created_at: first.receivedAt.toISOString(),
    updated_at: (first.finishedAt ?? first.receivedAt).toISOString(),
    verified_at: null
  }
}

function toBody (view: SourceView, orgId: string, missing: string[]): SourceStatusBody {
  const base = view.registration === null ? waitingBody(view, orgId) : registrationBody(view.registration)
  return { ...base, waiting: waitingFor(view.pending, missing) }
}

/** Where a request's source lives: the caller's org (status API), or any org (operators). null: unknown. */
type OrgOf = (request: FastifyRequest, sourceId: string) => Promise<string | null>

interface SourceRoutes {
  prefix: string
  tag: string
  security: Array<Record<string, string[]>>
  orgOf: OrgOf
  notFound: (request: FastifyRequest, sourceId: string) => Promise<string>
}

/** The status API: what cloudoreg knows of each source, scoped to the caller's org; and the same views for operators, in any org. */
export default async function sources (fastify: FastifyInstance): Promise<void> {
  const { config } = fastify
  fastify.addSchema(SourceStatus)
  const missing = (): string[] => fastify.scheduler === null ? missingUpstreamSettings(config) : []

  await fastify.register(async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
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
      return { ...pageOf(`${PREFIX}/sources`, count, limit, offset, { state }), data: data.map(r => ({ ...registrationBody(r), waiting: null })) }
    })

    /** Another org's source is indistinguishable from one that does not exist. */
    async function notFound (request: FastifyRequest, sourceId: string): Promise<string> {
      const orgId = request.tenant.orgId
      const unknown = await app.store.inbox.pendingWithoutSource(orgId)
      const hint = unknown === 0
        ? ''
        : `; ${unknown} event${unknown > 1 ? 's' : ''} of your org wait${unknown > 1 ? '' : 's'} whose source is not known yet ` +
          `(${missing().length > 0 ? `upstreams not configured: ${missing().join(', ')}` : 'sources-api not read yet'})`
      return `source ${sourceId} has no registration and no waiting event in your org${hint}`
    }
    sourceRoutes(app, { prefix: PREFIX, tag: 'status', security, orgOf: async request => request.tenant.orgId, notFound })
  })

  // Operators (INTERNAL_TOKEN): the same views of a source, whatever its org (that of its registration).
  await fastify.register(async (fastify) => {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
    app.addHook('onRequest', app.auth.internal)
    sourceRoutes(app, {
      prefix: '/internal/v1',
      tag: 'operations',
      security: [{ bearer: [] }],
      orgOf: async (_, sourceId) => (await app.store.registrations.findBySourceInAnyOrg(sourceId))?.orgId ?? null,
      notFound: async (_, sourceId) => `source ${sourceId} has no registration`
    })
  })

  function sourceRoutes (fastify: FastifyInstance, o: SourceRoutes): void {
    const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
    const keepsAnswering = o.tag === 'status'
    app.get(`${o.prefix}/sources/:source_id`, {
      config: { keepsAnswering },
      schema: {
        tags: [o.tag],
        summary: o.tag === 'status' ? 'Registration status of one source' : 'Registration status of one source, in any org',
        description: 'A source whose events are still waiting or running answers with `waiting` (and `state: pending` before its ' +
          'first registration), saying what it waits for.',
        security: o.security,
        params: SourceParams,
        response: { 200: Type.Unsafe<SourceStatusBody>({ $ref: 'SourceStatus#' }), 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
      }
    }, async (request, reply) => {
      const { source_id: sourceId } = request.params
      const orgId = await o.orgOf(request, sourceId)
      const view = orgId === null ? null : await viewSource(app.store, orgId, sourceId)
      if (view === null || orgId === null) return sendProblem(reply, 404, await o.notFound(request, sourceId))
      return toBody(view, orgId, missing())
    })

    app.get(`${o.prefix}/sources/:source_id/history`, {
      config: { keepsAnswering },
      schema: {
        tags: [o.tag],
        summary: 'Timeline of one source: every event received, what was done, the statuses reported' + (o.tag === 'status' ? '' : ' (any org)'),
        description: '`attempts=true` adds every attempt of each event (`attempt_history`).',
        security: o.security,
        params: SourceParams,
        querystring: HistoryQuery,
        response: { 200: SourceHistory, 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
      }
    }, async (request, reply) => {
      const { source_id: sourceId } = request.params
      const orgId = await o.orgOf(request, sourceId)
      const view = orgId === null ? null : await viewSource(app.store, orgId, sourceId)
      if (view === null || orgId === null) return sendProblem(reply, 404, await o.notFound(request, sourceId))
      const applicationId = view.registration?.applicationId ?? null
      const [events, statuses, audit] = await Promise.all([
        app.store.inbox.eventsOf(orgId, sourceId, queueKeysOf(sourceId, view.registration), HISTORY_LIMIT),
        applicationId === null ? [] : app.store.outbox.statusesOf(orgId, applicationId, HISTORY_LIMIT),
        applicationId === null ? [] : app.store.registrations.auditOf(orgId, applicationId, HISTORY_LIMIT)
      ])
      // Only events this org may see are asked for: the attempts follow the events' own scoping.
      const attempts = request.query.attempts ? await app.store.attemptsOf(events.map(e => e.id)) : null
      const timeline: Array<Static<typeof EventEntry> | Static<typeof StatusEntry>> = [
        ...events.map(e => ({
          kind: 'event' as const,
          at: e.receivedAt.toISOString(),
          event_id: e.id,
          event_type: e.eventType,
          description: describeEvent(e),
          state: e.state,
          outcome: e.outcome,
          attempts: e.attempts,
          last_error: e.lastError,
          finished_at: e.finishedAt?.toISOString() ?? null,
          trace_id: e.traceId,
          role_session_name: e.roleSessionName,
          ...(attempts === null ? {} : { attempt_history: (attempts.get(e.id) ?? []).map(attemptBody) })
        })),
        ...statuses.map(s => ({
          kind: 'status' as const,
          at: s.createdAt.toISOString(),
          status: s.status,
          error: s.error,
          sent_at: s.sentAt?.toISOString() ?? null,
          superseded: s.superseded
        }))
      ]
      // ISO strings sort as times; on a tie the event comes before the status it caused.
      timeline.sort((a, b) => a.at < b.at ? -1 : a.at > b.at ? 1 : a.kind === b.kind ? 0 : a.kind === 'event' ? -1 : 1)
      return {
        source_id: sourceId,
        application_id: applicationId,
        timeline,
        audit: audit.map(a => ({ at: a.at.toISOString(), action: a.action, event_id: a.eventId, detail: a.detail }))
      }
    })
  }
}
