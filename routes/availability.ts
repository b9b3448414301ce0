import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import { checkEvent } from '../src/events/check.js'
import { CHECK_EVENT } from '../src/events/event.js'
import { sourceKey } from '../src/events/keys.js'
import { createCheckLimits } from '../src/ingress/check-limits.js'
import { sendProblem } from '../src/plugins/infrastructure/problem.js'
import { ProblemRef } from '../src/schemas.js'
import { EVENT_ID_HEADER } from '../src/http/headers.js'

const CheckBody = Type.Object({
  // A number JSON holds exactly: 1e21 would become "1e+21", and 2^53+1 another source's id.
  source_id: Type.Union([Type.String({ pattern: '^[0-9]{1,20}$' }), Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })],
    { description: 'sources-api source id' })
}, { examples: [{ source_id: '7' }] })

/** cloudoreg's own path, and the one sources-api's cloud-meter check URL names by default (cloudigrade's). */
export const CHECK_PATHS = ['/internal/api/cloudoreg/v1/availability_status', '/internal/api/cloudigrade/v1/availability_status']

/**
 * sources-api's periodic availability check: answer at once, re-verify on the source's queue.
 * sources-api sends no credential (only identity and tenant headers), so the network policy admits
 * only it, and what a caller can cost is bounded here: per-org and overall rates, at most one
 * pending check per source, and the check handler re-reports a fresh result without calling STS.
 */
export default async function availability (fastify: FastifyInstance): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const limits = createCheckLimits(app.config.CHECK_ORG_PER_MINUTE, app.config.CHECK_TOTAL_PER_MINUTE)
  for (const path of CHECK_PATHS) {
    app.post(path, {
      schema: {
        tags: ['lifecycle'],
        summary: 'Re-check a source (sources-api\'s periodic availability check)',
        description: 'Answers 204 at once and queues a re-verification behind the source\'s other events; a check while one is ' +
          'pending for the source is that one. A source verified within CHECK_REUSE_SECONDS has its last result reported again ' +
          'without calling AWS. A paused or removed source is not re-checked. An unknown source is looked up in sources-api: a ' +
          'cloud-meter application with an ARN authentication registered before cloudoreg existed is registered now. ' +
          'Over CHECK_ORG_PER_MINUTE checks of one org, or CHECK_TOTAL_PER_MINUTE in all, in this replica: 429.' +
          (path.includes('cloudigrade') ? ' The same route at the path sources-api\'s default cloud-meter check URL names.' : ''),
        security: [{ identity: [] }],
        body: CheckBody,
        response: { 204: { description: 'Accepted (or nothing to do)', type: 'null' }, 400: ProblemRef, 401: ProblemRef, 429: ProblemRef, 503: ProblemRef }
      },
      // Before the schema: its type coercion would turn 2^53 (2^53+1 as JSON reads it) into the string
      // "9007199254740992", which the string branch then accepts.
      preValidation: async (request, reply) => {
        const sourceId = (request.body as { source_id?: unknown } | null)?.source_id
        if (typeof sourceId === 'number' && !(Number.isSafeInteger(sourceId) && sourceId >= 0)) {
          return sendProblem(reply, 400, 'body/source_id must be a string of digits or an integer from 0 to 2^53-1')
        }
      },
      // After validation, as before: a malformed body is a 400 whoever sends it.
      preHandler: app.auth.sourcesCaller
    }, async (request, reply) => {
      const { tenant } = request
      const wait = limits.take(tenant.orgId)
      if (wait !== null) {
        request.log.warn({ orgId: tenant.orgId }, 'availability check over its rate limit')
        return sendProblem(reply, 429, 'too many availability checks; sources-api checks again on its next round', { 'retry-after': String(wait) })
      }
      const sourceId = String(request.body.source_id)
      const registration = await app.store.registrations.findBySource(tenant.orgId, sourceId)
      if (registration?.state === 'paused' || registration?.state === 'removed') return reply.code(204).send()
      if (await app.store.inbox.hasPending(tenant.orgId, sourceKey(sourceId), CHECK_EVENT)) return reply.code(204).send()
      const [id] = await app.store.inbox.append([checkEvent(tenant, sourceId, 'sources-api')])
      // null: a check of the same source within the minute was stored already (one delivery).
      if (id !== null && id !== undefined) reply.header(EVENT_ID_HEADER, String(id))
      return reply.code(204).send()
    })
  }
}
