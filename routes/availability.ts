import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../src/config.js'
import { decodeIdentity, isOrgId, type Tenant } from '../src/identity.js'
import { checkEvent, checkQueueKey } from '../src/ingress/check-event.js'
import { createCheckLimits } from '../src/ingress/check-limits.js'
import { CHECK_EVENT } from '../src/pipeline/handlers/index.js'
import { sendProblem } from '../src/plugins/problem.js'

const ProblemRef = Type.Unsafe<unknown>({ $ref: 'Problem#' })

const CheckBody = Type.Object({
  source_id: Type.Union([Type.String({ pattern: '^[0-9]{1,20}$' }), Type.Integer({ minimum: 0 })], { description: 'sources-api source id' })
})

/** cloudoreg's own path, and the one sources-api's cloud-meter check URL names by default (cloudigrade's). */
export const CHECK_PATHS = ['/internal/api/cloudoreg/v1/availability_status', '/internal/api/cloudigrade/v1/availability_status']

/** The tenant of a call from sources-api: its tenant headers, else its identity. */
function tenantOf (headers: Record<string, string | string[] | undefined>): Tenant | null {
  const orgId = headers['x-rh-sources-org-id']
  const account = headers['x-rh-sources-account-number']
  const identity = decodeIdentity(headers['x-rh-identity'] as string | undefined)
  if (isOrgId(orgId)) {
    return { orgId, accountNumber: typeof account === 'string' && account !== '' ? account : identity.ok ? identity.accountNumber : null }
  }
  return identity.ok ? { orgId: identity.orgId, accountNumber: identity.accountNumber } : null
}

/**
 * sources-api's periodic availability check: answer at once, re-verify on the source's queue.
 * sources-api sends no credential (only identity and tenant headers), so the network policy admits
 * only it, and what a caller can cost is bounded here: per-org and overall rates, at most one
 * pending check per source, and the check handler re-reports a fresh result without calling STS.
 */
export default async function availability (fastify: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const limits = createCheckLimits(config.CHECK_ORG_PER_MINUTE, config.CHECK_TOTAL_PER_MINUTE)
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
      }
    }, async (request, reply) => {
      const tenant = tenantOf(request.headers)
      if (tenant === null) return sendProblem(reply, 401, 'needs x-rh-sources-org-id or an x-rh-identity with an org_id')
      const wait = limits.take(tenant.orgId)
      if (wait !== null) {
        request.log.warn({ orgId: tenant.orgId }, 'availability check over its rate limit')
        return sendProblem(reply, 429, 'too many availability checks; sources-api checks again on its next round', { 'retry-after': String(wait) })
      }
      const sourceId = String(request.body.source_id)
      const registration = await app.store.registrations.findBySource(tenant.orgId, sourceId)
      if (registration?.state === 'paused' || registration?.state === 'removed') return reply.code(204).send()
      if (await app.store.inbox.hasPending(tenant.orgId, checkQueueKey(sourceId), CHECK_EVENT)) return reply.code(204).send()
      await app.store.inbox.append([checkEvent(tenant, sourceId, 'sources-api')])
      return reply.code(204).send()
    })
  }
}
