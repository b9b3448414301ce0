import { Type } from '@sinclair/typebox'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../src/config.js'
import { carriesToken } from '../src/ingress/credentials.js'
import { callerIdentity, isOrgId, optionalAccountNumber, type Tenant } from '../src/identity.js'
import { checkEvent } from '../src/ingress/check-event.js'
import { sendProblem } from '../src/plugins/problem.js'

const ProblemRef = Type.Unsafe<unknown>({ $ref: 'Problem#' })

const CheckBody = Type.Object({
  // A number JSON holds exactly: 1e21 would become "1e+21", and 2^53+1 another source's id.
  source_id: Type.Union([Type.String({ pattern: '^[0-9]{1,20}$' }), Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })],
    { description: 'sources-api source id' })
})

type TenantOf =
  | { ok: true, tenant: Tenant, notes: string[] }
  | { ok: false, status: 400 | 401, detail: string }

/**
 * The tenant of a call from sources-api: its tenant headers, else its identity. An org id header
 * that is there must be valid (400); an identity that is used must be valid (401); an account
 * number that is not one is dropped, with a note for the log.
 */
function tenantOf (headers: Record<string, string | string[] | undefined>): TenantOf {
  const orgHeader = headers['x-rh-sources-org-id']
  if (orgHeader !== undefined && orgHeader !== '' && !isOrgId(orgHeader)) {
    return { ok: false, status: 400, detail: 'x-rh-sources-org-id is not a valid org id (digits)' }
  }
  const notes: string[] = []
  const account = optionalAccountNumber(headers['x-rh-sources-account-number'])
  if (account.refused) notes.push('x-rh-sources-account-number is not an account number (digits); ignored')
  if (isOrgId(orgHeader) && account.accountNumber !== null) return { ok: true, tenant: { orgId: orgHeader, accountNumber: account.accountNumber }, notes }
  const identity = callerIdentity(headers['x-rh-identity'] as string | undefined)
  if (identity.ok && identity.accountNumberRefused) notes.push('account_number in x-rh-identity is not an account number (digits); ignored')
  if (isOrgId(orgHeader)) return { ok: true, tenant: { orgId: orgHeader, accountNumber: identity.ok ? identity.accountNumber : null }, notes }
  if (!identity.ok) return { ok: false, status: 401, detail: `needs x-rh-sources-org-id or a valid x-rh-identity: ${identity.reason}` }
  return { ok: true, tenant: { orgId: identity.orgId, accountNumber: identity.accountNumber }, notes }
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
    },
    // Before the schema: its type coercion would turn 2^53 (2^53+1 as JSON reads it) into the string
    // "9007199254740992", which the string branch then accepts.
    preValidation: async (request, reply) => {
      const sourceId = (request.body as { source_id?: unknown } | null)?.source_id
      if (typeof sourceId === 'number' && !(Number.isSafeInteger(sourceId) && sourceId >= 0)) {
        return sendProblem(reply, 400, 'body/source_id must be a string of digits or an integer from 0 to 2^53-1')
      }
    }
  }, async (request, reply) => {
    const caller = tenantOf(request.headers)
    if (!caller.ok) return sendProblem(reply, caller.status, caller.detail)
    const { tenant, notes } = caller
    if (notes.length > 0) request.log.warn({ notes }, 'availability check taken without what it could not use')
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
