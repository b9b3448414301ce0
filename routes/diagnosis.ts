import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { PERMISSION_POLICY, trustPolicy } from '../src/aws/policies.js'
import { EVENT_ID_HEADER } from '../src/http/headers.js'
import { viewSource } from '../src/http/source-view.js'
import { checkEvent } from '../src/events/check.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { Nullable, ProblemRef, SourceParams } from '../src/schemas.js'
import { stepResults, whatToFix } from '../src/status/diagnosis.js'
import { CHECK_STEPS } from '../src/store/registrations.js'

const PREFIX = '/api/cloudoreg/v1'
/** A customer's checks of one source: at most one per this many seconds. */
export const CHECK_INTERVAL_S = 60

const Step = Type.Union(CHECK_STEPS.map(s => Type.Literal(s)))

const Diagnosis = Type.Object({
  source_id: Type.String({ examples: ['7'] }),
  application_id: Nullable(Type.String({ examples: ['42'] })),
  state: Type.String({ examples: ['unavailable'] }),
  error: Nullable(Type.Object({ code: Type.String({ examples: ['CG3002'] }), message: Type.String() })),
  failed_step: Nullable(Step),
  upstream_code: Nullable(Type.String({ description: 'What AWS, sources-api or RHSM answered at that step, as received', examples: ['AccessDenied'] })),
  steps: Type.Array(Type.Object({
    step: Step,
    result: Type.Union([Type.Literal('passed'), Type.Literal('failed'), Type.Literal('not reached'), Type.Literal('not checked')])
  }), { description: 'read application → read authentication → duplicates (cloudoreg\'s own rule) → AssumeRole → GetCallerIdentity → RHSM' }),
  what_to_fix: Nullable(Type.String({ description: 'In words, for the customer' })),
  role_arn: Nullable(Type.String()),
  last_role_session_name: Nullable(Type.String({
    description: 'The RoleSessionName of cloudoreg\'s last AssumeRole of this role: the customer finds that call in their CloudTrail ' +
      '(eventName AssumeRole, requestParameters.roleSessionName); it names the source and the event',
    examples: ['cloudoreg-s7-e42']
  })),
  red_hat_aws_account_id: Nullable(Type.String({ description: 'The account cloudoreg assumes the role from; null when AWS could not be asked', examples: ['998877665544'] })),
  external_id: Nullable(Type.String({ description: 'This source\'s external id (sources-api), which the trust policy must require' })),
  trust_policy: Nullable(Type.Record(Type.String(), Type.Unknown(), { description: 'The exact trust policy this source\'s role needs' })),
  permission_policy: Type.Record(Type.String(), Type.Unknown(), { description: 'The minimal permission policy of the role' }),
  last_checked_at: Nullable(Type.String({ format: 'date-time', description: 'When a check last reached a verdict' })),
  next_check_at: Nullable(Type.String({ format: 'date-time', description: 'When a waiting check or retry of this source runs; null when none is queued' })),
  check_available_at: Type.String({ format: 'date-time', description: 'From when POST .../check is accepted' })
}, { description: 'Why the source is (un)available, and what to change' })

/** The customer's question "why is my source unavailable?", and a check now. */
export default async function diagnosis (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', app.auth.identity)
  const identitySecurity = [{ identity: [] }]

  /** Red Hat's account, or null: a diagnosis still answers while AWS does not. */
  async function ownAccount (): Promise<string | null> {
    try {
      return await app.ownAwsAccount()
    } catch (err) {
      app.log.warn({ err }, 'the AWS account cloudoreg verifies from is unknown: GetCallerIdentity failed')
      return null
    }
  }

  app.get(`${PREFIX}/sources/:source_id/diagnosis`, {
    config: { keepsAnswering: true },
    schema: {
      tags: ['status'],
      summary: 'Why is my source unavailable: the step that failed, what AWS or RHSM said, what to fix, the policies to create',
      security: identitySecurity,
      params: SourceParams,
      response: { 200: Diagnosis, 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
    }
  }, async (request, reply) => {
    const { source_id: sourceId } = request.params
    const view = await viewSource(app.store, request.tenant.orgId, sourceId)
    if (view === null) return sendProblem(reply, 404, `source ${sourceId} has no registration and no waiting event in your org`)
    const r = view.registration
    const account = await ownAccount()
    const lastCheck = await app.store.registrations.lastCheckRequest(request.tenant.orgId, sourceId)
    const checkAvailableAt = new Date(Math.max(Date.now(), (lastCheck?.getTime() ?? 0) + CHECK_INTERVAL_S * 1000))
    const externalId = r?.externalId ?? null
    const sessionName = await app.store.inbox.lastRoleSessionName(request.tenant.orgId, sourceId)
    return {
      source_id: sourceId,
      application_id: r?.applicationId ?? null,
      state: r?.state ?? 'pending',
      error: r?.lastErrorCode ? { code: r.lastErrorCode, message: r.lastErrorMessage ?? '' } : null,
      failed_step: r?.failedStep ?? null,
      upstream_code: r?.upstreamCode ?? null,
      steps: r === null ? CHECK_STEPS.map(step => ({ step, result: 'not checked' as const })) : stepResults(r),
      what_to_fix: r === null ? null : whatToFix(r, account),
      role_arn: r?.roleArn ?? null,
      last_role_session_name: sessionName,
      red_hat_aws_account_id: account,
      external_id: externalId,
      trust_policy: account === null || externalId === null ? null : trustPolicy(account, externalId),
      permission_policy: PERMISSION_POLICY,
      last_checked_at: r?.checkedAt?.toISOString() ?? null,
      next_check_at: view.pending[0]?.nextAttemptAt.toISOString() ?? null,
      check_available_at: checkAvailableAt.toISOString()
    }
  })

  app.post(`${PREFIX}/sources/:source_id/check`, {
    schema: {
      tags: ['status'],
      summary: 'Check the source again now (at most once a minute per source)',
      description: `Queues a re-verification behind the source's other events; 429 with Retry-After within ${CHECK_INTERVAL_S} s of the last. ` +
        'Follow it with GET .../history or .../diagnosis.',
      security: identitySecurity,
      params: SourceParams,
      response: {
        202: Type.Object({ event_id: Type.Integer({ examples: [3] }) }, { description: 'Queued; cloudoreg-event-id names the check too' }),
        400: ProblemRef,
        401: ProblemRef,
        404: ProblemRef,
        409: ProblemRef,
        429: ProblemRef
      }
    }
  }, async (request, reply) => {
    const { source_id: sourceId } = request.params
    const view = await viewSource(app.store, request.tenant.orgId, sourceId)
    if (view === null) return sendProblem(reply, 404, `source ${sourceId} has no registration and no waiting event in your org`)
    const state = view.registration?.state
    if (state === 'paused' || state === 'removed') return sendProblem(reply, 409, `source ${sourceId} is ${state}: there is nothing to check`)
    const wait = await app.store.registrations.claimCheck(request.tenant.orgId, sourceId, CHECK_INTERVAL_S)
    if (wait > 0) return sendProblem(reply, 429, `source ${sourceId} was checked less than a minute ago; try again in ${wait} s`, { 'retry-after': String(wait) })
    const [id] = await app.store.inbox.append([checkEvent(request.tenant, sourceId, 'customer')])
    return reply.code(202).header(EVENT_ID_HEADER, String(id)).send({ event_id: id! })
  })
}
