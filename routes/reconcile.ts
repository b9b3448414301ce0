import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { DRIFT_CLASSES } from '../src/reconcile/drift.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { Nullable, ProblemRef } from '../src/schemas.js'
import { DRIFT_LIST_LIMIT } from '../src/store/reconcile.js'

const DriftClass = Type.Union(DRIFT_CLASSES.map(c => Type.Literal(c)))

const Drift = Type.Object({
  class: DriftClass,
  source_id: Nullable(Type.String({ examples: ['7'] })),
  application_id: Nullable(Type.String({ examples: ['42'] })),
  org_id: Nullable(Type.String({ examples: ['7654321'] })),
  rhsm_account_id: Nullable(Type.String({ description: 'The AWS account RHSM maps the source to, if any', examples: ['123456789012'] })),
  detail: Type.String({ description: 'What differs, in words', examples: ['source 7 is mapped to AWS account 123456789012 here, RHSM holds no mapping for it'] }),
  repair: Type.String({ description: 'What a real run does about it', examples: ['re-verify and map AWS account 123456789012 for source 7 in RHSM'] })
})

const Run = Type.Object({
  id: Type.String({ examples: ['0b7f9d4e-3c1a-4f4e-9d0a-2f1e8c6b5a4d'] }),
  dry_run: Type.Boolean(),
  scheduled: Type.Boolean({ description: 'Started by RECONCILE_INTERVAL rather than by an operator' }),
  state: Type.Union([Type.Literal('running'), Type.Literal('done'), Type.Literal('failed')], {
    description: 'A real run is `running` until the repairs it queued have ended; a run whose replica stopped reads as `failed`'
  }),
  started_at: Type.String({ format: 'date-time' }),
  finished_at: Nullable(Type.String({ format: 'date-time' })),
  checked: Type.Integer({ description: 'Orgs compared so far' }),
  total: Nullable(Type.Integer({ description: 'Orgs to compare (those cloudoreg holds registrations of, and those sources-api lists); null while they are listed' })),
  counts: Type.Record(Type.String(), Type.Integer(), { description: 'Drift items found so far, per class (every class, zeros included)' }),
  drift: Type.Array(Drift, { description: `The drift items, in the order found; at most ${DRIFT_LIST_LIMIT} (see \`truncated\`)` }),
  truncated: Type.Boolean({ description: `More than ${DRIFT_LIST_LIMIT} drift items were found: \`counts\` counts them all, \`drift\` lists the first ${DRIFT_LIST_LIMIT}` }),
  repairs_queued: Type.Integer({ description: 'Repair events a real run queued (each in its source\'s history)' }),
  error: Nullable(Type.String({ description: 'Why a failed run failed' }))
})

const security: Array<Record<string, string[]>> = [{ bearer: [] }]

/**
 * Three-way reconciliation of cloudoreg, sources-api and RHSM (src/reconcile): start a run, follow
 * it. INTERNAL_TOKEN only, like the other operator routes.
 */
export default async function reconcileRoutes (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.addHook('onRequest', app.auth.internal)

  app.post('/internal/v1/reconcile', {
    // A POST without a body asks for the default: a dry run.
    preValidation: async request => { (request as { body: unknown }).body ??= {} },
    schema: {
      tags: ['operations'],
      summary: 'Compare cloudoreg with sources-api and RHSM; a real run (dry_run false) also repairs',
      description: 'Starts a run in the background and answers its id; `GET /internal/v1/reconcile/{id}` follows it. A real run queues one ' +
        '`cloudoreg.reconcile` event per drift item, behind the source\'s other events (each shows in the source\'s history), and ends once ' +
        'they all have. One run at a time across replicas.',
      security,
      body: Type.Object({
        dry_run: Type.Boolean({ default: true, description: 'true: report only; false: report and repair' })
      }, { additionalProperties: false }),
      response: {
        202: Type.Object({ id: Type.String(), dry_run: Type.Boolean(), state: Type.Literal('running') }, { description: 'Started' }),
        400: ProblemRef,
        401: ProblemRef,
        409: ProblemRef,
        503: ProblemRef
      }
    }
  }, async (request, reply) => {
    const dryRun = request.body.dry_run
    const started = await app.reconcile.start(dryRun)
    if (!started.ok) {
      if (started.reason === 'unconfigured') return sendProblem(reply, 503, 'reconciliation needs SOURCES_API_URL, SOURCES_PSK and RHSM_API_URL')
      return sendProblem(reply, 409, 'a reconciliation run is in progress (on this or another replica); follow it, or try again when it has ended')
    }
    request.log.info({ runId: started.id, dryRun }, 'reconciliation requested by an operator')
    return reply.code(202).send({ id: started.id, dry_run: dryRun, state: 'running' as const })
  })

  app.get('/internal/v1/reconcile/:id', {
    schema: {
      tags: ['operations'],
      summary: 'A reconciliation run: its progress and the drift it found',
      security,
      params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f-]{1,64}$', description: 'The id the POST answered' }) }),
      response: { 200: Run, 400: ProblemRef, 401: ProblemRef, 404: ProblemRef }
    }
  }, async (request, reply) => {
    const run = await app.store.reconcile.get(request.params.id, app.reconcile.staleMs)
    if (run === null) return sendProblem(reply, 404, `no reconciliation run ${request.params.id}`)
    return {
      id: run.id,
      dry_run: run.dryRun,
      scheduled: run.scheduled,
      state: run.state,
      started_at: run.startedAt.toISOString(),
      finished_at: run.finishedAt?.toISOString() ?? null,
      checked: run.checked,
      total: run.total,
      counts: run.counts,
      drift: run.drift.map(d => ({
        class: d.class,
        source_id: d.sourceId,
        application_id: d.applicationId,
        org_id: d.orgId,
        rhsm_account_id: d.rhsmAccountId,
        detail: d.detail,
        repair: d.repair
      })),
      truncated: run.driftFound > run.drift.length,
      repairs_queued: run.repairsQueued,
      error: run.error
    }
  })
}
