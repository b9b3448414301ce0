import { createHash, timingSafeEqual } from 'node:crypto'
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
