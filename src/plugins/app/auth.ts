import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { pushIsOpen } from '../../config.js'
import { decodeIdentity, isOrgId, type Tenant } from '../../identity.js'
import { sendProblem } from '../infrastructure/problem.js'

type Check = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>

declare module 'fastify' {
  interface FastifyInstance {
    /** Every way a caller proves who it is, as hooks that routes name: the one place auth lives. */
    auth: {
      /** The push route, as a preHandler (a webhook signature covers the raw body): a push token, or a valid signature. */
      push: Check
      /** Operator routes: INTERNAL_TOKEN (or PUSH_TOKEN); never an identity alone. */
      internal: Check
      /** The status API: `x-rh-identity` → `request.tenant`. */
      identity: Check
      /** sources-api's availability check: its tenant headers, else its identity → `request.tenant`. */
      sourcesCaller: Check
    }
  }
  interface FastifyRequest {
    /** The caller's org (and account), set by the identity and sourcesCaller checks. */
    tenant: Tenant
  }
}

function sameSecret (given: string, expected: string): boolean {
  // Hashing first makes the comparison constant-time whatever the lengths.
  return timingSafeEqual(createHash('sha256').update(given).digest(), createHash('sha256').update(expected).digest())
}

/** The token a caller presents: `Authorization: Bearer <token>`, or Dapr's `dapr-api-token`. */
function presentedToken (request: FastifyRequest): string | undefined {
  const auth = request.headers.authorization
  if (typeof auth === 'string' && /^bearer /i.test(auth)) return auth.slice(7).trim()
  const dapr = request.headers['dapr-api-token']
  return typeof dapr === 'string' ? dapr : undefined
}

/** Whether the request carries one of the configured tokens (unset ones never match). */
function carriesToken (request: FastifyRequest, tokens: Array<string | undefined>): boolean {
  const given = presentedToken(request)
  if (given === undefined) return false
  let match = false
  for (const token of tokens) if (token !== undefined && sameSecret(given, token)) match = true
  return match
}

const WEBHOOK_TOLERANCE_S = 5 * 60

/**
 * Standard Webhooks: `webhook-signature` holds space-separated `v1,<base64>`
 * HMAC-SHA256 signatures of `<webhook-id>.<webhook-timestamp>.<raw body>`,
 * keyed by the base64 part of a `whsec_` secret; the timestamp must be within
 * five minutes of now.
 */
export function verifyWebhookSignature (headers: Record<string, string | string[] | undefined>, body: Buffer, secret: string, nowMs = Date.now()): boolean {
  const id = headers['webhook-id']
  const timestamp = headers['webhook-timestamp']
  const signatures = headers['webhook-signature']
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return false
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowMs / 1000 - Number(timestamp)) > WEBHOOK_TOLERANCE_S) return false
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.`).update(body).digest()
  let valid = false
  for (const entry of signatures.split(' ')) {
    const [version, signature] = entry.split(',', 2)
    if (version !== 'v1' || signature === undefined) continue
    const given = Buffer.from(signature, 'base64')
    if (given.length === expected.length && timingSafeEqual(given, expected)) valid = true
  }
  return valid
}

/** The tenant of a call from sources-api: its tenant headers, else its identity. */
function sourcesTenant (headers: Record<string, string | string[] | undefined>): Tenant | null {
  const orgId = headers['x-rh-sources-org-id']
  const account = headers['x-rh-sources-account-number']
  const identity = decodeIdentity(headers['x-rh-identity'] as string | undefined)
  if (isOrgId(orgId)) {
    return { orgId, accountNumber: typeof account === 'string' && account !== '' ? account : identity.ok ? identity.accountNumber : null }
  }
  return identity.ok ? { orgId: identity.orgId, accountNumber: identity.accountNumber } : null
}

async function auth (app: FastifyInstance): Promise<void> {
  const { config } = app
  if (pushIsOpen(config) && config.PUSH_AUTH !== 'none') {
    app.log.warn('the push route accepts anyone who can reach it: set PUSH_TOKEN or PUSH_WEBHOOK_SECRET, or PUSH_AUTH=none behind a network policy')
  }
  app.decorateRequest('tenant', null as unknown as Tenant)
  app.decorate('auth', {
    async push (request, reply) {
      if (pushIsOpen(config)) return
      if (carriesToken(request, [config.PUSH_TOKEN])) return
      if (config.PUSH_WEBHOOK_SECRET !== undefined && Buffer.isBuffer(request.body) &&
          verifyWebhookSignature(request.headers, request.body, config.PUSH_WEBHOOK_SECRET)) return
      return sendProblem(reply, 401, 'a push needs Authorization: Bearer <PUSH_TOKEN>, dapr-api-token, or a valid Standard Webhooks signature',
        { 'www-authenticate': 'Bearer' })
    },
    async internal (request, reply) {
      if (config.INTERNAL_TOKEN === undefined && config.PUSH_TOKEN === undefined) {
        return sendProblem(reply, 401, 'operator routes are closed until INTERNAL_TOKEN (or PUSH_TOKEN) is configured')
      }
      if (!carriesToken(request, [config.INTERNAL_TOKEN, config.PUSH_TOKEN])) {
        return sendProblem(reply, 401, 'needs Authorization: Bearer <INTERNAL_TOKEN>', { 'www-authenticate': 'Bearer' })
      }
    },
    async identity (request, reply) {
      const identity = decodeIdentity(request.headers['x-rh-identity'] as string | undefined)
      if (!identity.ok) return sendProblem(reply, 401, identity.reason)
      request.tenant = { orgId: identity.orgId, accountNumber: identity.accountNumber }
    },
    async sourcesCaller (request, reply) {
      const tenant = sourcesTenant(request.headers)
      if (tenant === null) return sendProblem(reply, 401, 'needs x-rh-sources-org-id or an x-rh-identity with an org_id')
      if (config.AVAILABILITY_CHECK_TOKEN !== undefined && !carriesToken(request, [config.AVAILABILITY_CHECK_TOKEN])) {
        return sendProblem(reply, 401, 'needs Authorization: Bearer <AVAILABILITY_CHECK_TOKEN>', { 'www-authenticate': 'Bearer' })
      }
      request.tenant = tenant
    }
  })
}

export default fp(auth, { name: 'auth', dependencies: ['config'] })
