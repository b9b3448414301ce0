import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'

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
