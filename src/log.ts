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
