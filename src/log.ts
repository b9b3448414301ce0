import type { FastifyBaseLogger } from 'fastify'

/** The logger every module takes: Fastify's view of pino, so app.log and its children fit. */
export type Logger = FastifyBaseLogger

/** Headers that carry secrets; pino censors them wherever a request or response is logged. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-rh-identity"]',
  'req.headers["x-rh-sources-psk"]',
  'req.headers["dapr-api-token"]',
  'req.headers["ce-kafkaheaderxrhidentity"]',
  'headers.authorization',
  'headers["x-rh-identity"]',
  'headers["x-rh-sources-psk"]'
]

/** A sender's delivery id, as logged: enough of it to find the delivery, never all of it (it can be kilobytes). */
export function loggedId (id: string | null): string | null {
  return id === null ? null : id.slice(0, 64)
}
