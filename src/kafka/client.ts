import { readFileSync } from 'node:fs'
import { Kafka, logLevel, type KafkaConfig, type RetryOptions, type SASLOptions } from 'kafkajs'
import type { Backoff } from '../backoff.js'
import type { Config } from '../config.js'
import type { Logger } from '../log.js'

type KafkaSettings = Pick<Config, 'kafkaBrokers' | 'KAFKA_SASL_MECHANISM' | 'KAFKA_SASL_USERNAME' | 'KAFKA_SASL_PASSWORD' | 'KAFKA_SSL' | 'KAFKA_CA_PATH'>

/** Brokers and security for every Kafka client cloudoreg makes (status producer, event consumer). */
export function kafkaConnection (c: KafkaSettings): KafkaConnection {
  const ca = c.KAFKA_CA_PATH === undefined ? undefined : [readFileSync(c.KAFKA_CA_PATH, 'utf8')]
  // A CA only makes sense over TLS, so naming one turns TLS on.
  const ssl = ca !== undefined ? { ca } : c.KAFKA_SSL
  let sasl: SASLOptions | undefined
  if (c.KAFKA_SASL_MECHANISM !== undefined) {
    const mechanism = c.KAFKA_SASL_MECHANISM.toLowerCase() as 'plain' | 'scram-sha-256' | 'scram-sha-512'
    sasl = { mechanism, username: c.KAFKA_SASL_USERNAME ?? '', password: c.KAFKA_SASL_PASSWORD ?? '' }
  }
  return { brokers: c.kafkaBrokers, ssl, sasl }
}

export type KafkaConnection = Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl'>

/**
 * A backoff in kafkajs's terms. kafkajs draws its waits itself (it takes no function): the first
 * is `initialRetryTime` ± `factor`, each next one twice the last drawn ± `factor`, up to
 * `maxRetryTime`. The first wait's range is `backoffDelay`'s exactly; later ones drift around
 * its doubling ceiling, as kafkajs compounds its draws.
 */
export function kafkajsRetry (b: Backoff, retries: number): Required<Omit<RetryOptions, 'restartOnFailure'>> {
  const factor = b.jitter / (2 - b.jitter)
  return { initialRetryTime: Math.round(b.firstMs / (1 + factor)), maxRetryTime: b.maxMs, multiplier: 2, factor, retries }
}

/** kafkajs's retry policy (240 to 360 ms first), for the client and the consumer's own retry settings alike. */
export const KAFKA_RETRY = kafkajsRetry({ firstMs: 360, maxMs: 30_000, jitter: 1 / 3 }, 5)

/** A kafkajs client with cloudoreg's timeouts and retries, logging through pino. */
export function kafkaClient (connection: KafkaConnection, log: Logger, level: 'warn' | 'error'): Kafka {
  return new Kafka({
    clientId: 'cloudoreg',
    ...connection,
    connectionTimeout: 3000,
    // Longer than the broker stalls we ride out: a produce that times out is retried on the
    // same socket and a stalled broker later appends both copies.
    requestTimeout: 30_000,
    // Stated in full: kafkajs silently switches to other defaults when NODE_ENV=test. Callers
    // retry whole operations with their own backoff on top of these.
    retry: KAFKA_RETRY,
    logLevel: level === 'warn' ? logLevel.WARN : logLevel.ERROR,
    logCreator: () => ({ namespace, log: entry }) => {
      const error = typeof entry.error === 'string' ? entry.error : undefined
      log.warn({ kafka: namespace, ...(error !== undefined ? { error } : {}) }, entry.message)
    }
  })
}
