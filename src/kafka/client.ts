import { readFileSync } from 'node:fs'
import type { KafkaConfig, SASLOptions } from 'kafkajs'
import type { Config } from '../config.js'

type KafkaSettings = Pick<Config, 'kafkaBrokers' | 'KAFKA_SASL_MECHANISM' | 'KAFKA_SASL_USERNAME' | 'KAFKA_SASL_PASSWORD' | 'KAFKA_SSL' | 'KAFKA_CA_PATH'>

/** Brokers and security for every Kafka client cloudoreg makes (status producer, event consumer). */
export function kafkaConnection (c: KafkaSettings): Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl'> {
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
