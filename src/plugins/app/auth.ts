import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { pushIsOpen, webhookKey } from '../../config.js'
import type { PushChannel } from '../../events/event.js'
import { callerIdentity, isOrgId, optionalAccountNumber, type Tenant } from '../../identity.js'
import { sendProblem } from '../infrastructure/problem.js'

type Check = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>

declare module 'fastify' {
  interface FastifyInstance {
    /** Every way a caller proves who it is, as hooks that routes name: the one place auth lives. */
    auth: {
      /**
       * The push route, as an onRequest hook, before any of the body is read: the push token, or the
       * three signature headers with a fresh timestamp (then `push` checks the signature); else 401.
       */
      pushBeforeBody: Check
      /** The push route, as a preHandler (a webhook signature covers the raw body): verifies a signature `pushBeforeBody` let in. */
      push: Check
      /** Operator routes: INTERNAL_TOKEN only; not the push token, never an identity. */
      internal: Check
      /** The status API: `x-rh-identity` of an accepted type (ACCEPTED_IDENTITY_TYPES) → `request.tenant`. */
      identity: Check
      /** sources-api's availability check: its tenant headers, else its identity → `request.tenant` (sources-api sends no credential). */
      sourcesCaller: Check
    }
  }
  interface FastifyRequest {
    /** The caller's org (and account), set by the identity and sourcesCaller checks. */
    tenant: Tenant
    /** How a push authenticated (its dedupe keys' channel); `unverified` until its signature is checked. */
    pushChannel: PushChannel | 'unverified' | null
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
  if (!carriesFreshSignature(headers, nowMs)) return false
  const id = headers['webhook-id'] as string
  const timestamp = headers['webhook-timestamp'] as string
  const signatures = headers['webhook-signature'] as string
  const key = webhookKey(secret)
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

/** The three Standard Webhooks headers, with a timestamp within the tolerance: worth reading the body to verify. */
function carriesFreshSignature (headers: Record<string, string | string[] | undefined>, nowMs = Date.now()): boolean {
  const { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signatures } = headers
  if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signatures !== 'string') return false
  return /^\d{1,12}$/.test(timestamp) && Math.abs(nowMs / 1000 - Number(timestamp)) <= WEBHOOK_TOLERANCE_S
}

function refusePush (reply: FastifyReply): FastifyReply {
  // Close the connection: whatever body the caller goes on sending is not worth reading.
  reply.header('connection', 'close')
  return sendProblem(reply, 401, 'a push needs Authorization: Bearer <PUSH_TOKEN>, dapr-api-token, or a valid Standard Webhooks signature',
    { 'www-authenticate': 'Bearer' })
}

type SourcesTenant =
  | { ok: true, tenant: Tenant, notes: string[] }
  | { ok: false, status: 400 | 401, detail: string }

/**
 * The tenant of a call from sources-api: its tenant headers, else its identity. An org id header
 * that is there must be valid (400); an identity that is used must be valid (401); an account
 * number that is not one is dropped, with a note for the log.
 */
function sourcesTenant (headers: Record<string, string | string[] | undefined>): SourcesTenant {
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

async function auth (app: FastifyInstance): Promise<void> {
  const { config } = app
  if (pushIsOpen(config) && config.PUSH_AUTH !== 'none') {
    app.log.warn('the push route accepts anyone who can reach it: set PUSH_TOKEN or PUSH_WEBHOOK_SECRET, or PUSH_AUTH=none behind a network policy')
  }
  app.decorateRequest('tenant', null as unknown as Tenant)
  app.decorateRequest('pushChannel', null)
  app.decorate('auth', {
    async pushBeforeBody (request, reply) {
      if (pushIsOpen(config)) request.pushChannel = 'open'
      else if (carriesToken(request, [config.PUSH_TOKEN])) request.pushChannel = 'token'
      else if (config.PUSH_WEBHOOK_SECRET !== undefined && carriesFreshSignature(request.headers)) request.pushChannel = 'unverified'
      else return refusePush(reply)
    },
    async push (request, reply) {
      if (request.pushChannel !== 'unverified') return
      if (!Buffer.isBuffer(request.body) || !verifyWebhookSignature(request.headers, request.body, config.PUSH_WEBHOOK_SECRET!)) return refusePush(reply)
      request.pushChannel = 'signed'
    },
    async internal (request, reply) {
      if (config.INTERNAL_TOKEN === undefined) {
        return sendProblem(reply, 401, 'operator routes are closed until INTERNAL_TOKEN is configured')
      }
      if (!carriesToken(request, [config.INTERNAL_TOKEN])) {
        return sendProblem(reply, 401, 'needs Authorization: Bearer <INTERNAL_TOKEN>', { 'www-authenticate': 'Bearer' })
      }
    },
    async identity (request, reply) {
      const identity = callerIdentity(request.headers['x-rh-identity'] as string | undefined)
      if (!identity.ok) return sendProblem(reply, 401, identity.reason)
      request.tenant = { orgId: identity.orgId, accountNumber: identity.accountNumber }
    },
    async sourcesCaller (request, reply) {
      const caller = sourcesTenant(request.headers)
      if (!caller.ok) return sendProblem(reply, caller.status, caller.detail)
      if (caller.notes.length > 0) request.log.warn({ notes: caller.notes }, 'availability check taken without what it could not use')
      request.tenant = caller.tenant
    }
  })
}

export default fp(auth, { name: 'auth', dependencies: ['config'] })
