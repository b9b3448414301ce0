import type { FastifyBaseLogger } from 'fastify'
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino'

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

/**
 * pino with the secrets above censored: pretty, coloured lines when stdout is a terminal (a person
 * reading), JSON lines otherwise (a collector reading). Tests pass their own stream.
 */
export async function createLogger (level: string, stream?: DestinationStream): Promise<PinoLogger> {
  const options = { level, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }
  if (stream !== undefined) return pino(options, stream)
  if (process.stdout.isTTY !== true) return pino(options)
  // Loaded only for a terminal: production never needs it.
  const { default: pretty } = await import('pino-pretty')
  return pino(options, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }))
}
