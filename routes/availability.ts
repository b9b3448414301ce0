import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../src/config.js'
import { carriesToken } from '../src/ingress/credentials.js'
import { decodeIdentity, isOrgId, type Tenant } from '../src/identity.js'
import { checkEvent } from '../src/ingress/check-event.js'
import { sendProblem } from '../src/plugins/problem.js'

const ProblemRef = Type.Unsafe<unknown>({ $ref: 'Problem#' })

const CheckBody = Type.Object({
  source_id: Type.Union([Type.String({ pattern: '^[0-9]{1,20}$' }), Type.Integer({ minimum: 0 })], { description: 'sources-api source id' })
}, { examples: [{ source_id: '7' }] })

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

/** sources-api's periodic availability check: answer at once, re-verify on the source's queue. */
export default async function availability (fastify: FastifyInstance, { config }: { config: Config }): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  app.post('/internal/api/cloudoreg/v1/availability_status', {
    schema: {
      tags: ['lifecycle'],
      summary: 'Re-check a source (sources-api\'s periodic availability check)',
      description: 'Answers 204 at once and queues a re-verification behind the source\'s other events. A paused or removed ' +
        'source is not re-checked. An unknown source is looked up in sources-api: a cloud-meter application with an ARN ' +
        'authentication registered before cloudoreg existed is registered now.',
      security: [{ identity: [] }],
      body: CheckBody,
      response: { 204: { description: 'Accepted (or nothing to do)', type: 'null' }, 400: ProblemRef, 401: ProblemRef, 503: ProblemRef }
    }
  }, async (request, reply) => {
    const tenant = tenantOf(request.headers)
    if (tenant === null) return sendProblem(reply, 401, 'needs x-rh-sources-org-id or an x-rh-identity with an org_id')
    if (config.AVAILABILITY_CHECK_TOKEN !== undefined && !carriesToken(request, [config.AVAILABILITY_CHECK_TOKEN])) {
      return sendProblem(reply, 401, 'needs Authorization: Bearer <AVAILABILITY_CHECK_TOKEN>', { 'www-authenticate': 'Bearer' })
    }
    const sourceId = String(request.body.source_id)
    const registration = await app.store.registrations.findBySource(tenant.orgId, sourceId)
    if (registration?.state === 'paused' || registration?.state === 'removed') return reply.code(204).send()
    await app.store.inbox.append([checkEvent(tenant, sourceId, 'sources-api')])
    return reply.code(204).send()
  })
}
