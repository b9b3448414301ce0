import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import { pushIsOpen, webhookKey, type Config } from '../config.js'

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
export function carriesToken (request: FastifyRequest, tokens: Array<string | undefined>): boolean {
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

/**
 * How a push authenticated, which is also the channel its dedupe keys belong to: `token` (bearer or
 * dapr-api-token), `signed` (Standard Webhooks), `open` (no push authentication configured).
 */
export type PushChannel = 'token' | 'signed' | 'open'

/**
 * Decided from the headers alone, before any of the body is read: a push with neither the token nor
 * fresh signature headers is `null` (refuse it now); `unverified` still needs its signature checked
 * against the body.
 */
export function pushCredentialBeforeBody (request: FastifyRequest, config: Config): PushChannel | 'unverified' | null {
  if (pushIsOpen(config)) return 'open'
  if (carriesToken(request, [config.PUSH_TOKEN])) return 'token'
  if (config.PUSH_WEBHOOK_SECRET !== undefined && carriesFreshSignature(request.headers)) return 'unverified'
  return null
}
