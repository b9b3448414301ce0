import { Kafka, logLevel, Partitioners, type KafkaConfig, type Producer } from 'kafkajs'
import type { Logger } from '../log.js'
import { availabilityMessage, type StatusSink } from './relay.js'

export interface KafkaSinkOptions {
  connection: Pick<KafkaConfig, 'brokers' | 'ssl' | 'sasl'>
  topic: string
  log: Logger
}

/** Publishes to platform.sources.status; resolves once every in-sync replica acknowledged. */
export function kafkaStatusSink (o: KafkaSinkOptions): StatusSink {
  const kafka = new Kafka({
    clientId: 'cloudoreg',
    ...o.connection,
    connectionTimeout: 3000,
    // Longer than the broker stalls we ride out: a produce that times out is retried on the
    // same socket and a stalled broker later appends both copies.
    requestTimeout: 30_000,
    // Stated in full: kafkajs silently switches to other defaults when NODE_ENV=test. The relay
    // retries whole sends with its own backoff on top of these.
    retry: { initialRetryTime: 300, maxRetryTime: 30_000, multiplier: 2, factor: 0.2, retries: 5 },
    logLevel: logLevel.ERROR,
    logCreator: () => ({ namespace, log }) => { o.log.warn({ kafka: namespace }, log.message) }
  })
  let producer: Producer | undefined

  async function connected (): Promise<Producer> {
    if (producer !== undefined) return producer
    const p = kafka.producer({ allowAutoTopicCreation: true, createPartitioner: Partitioners.DefaultPartitioner, idempotent: false, maxInFlightRequests: 1 })
    try {
      await p.connect()
    } catch (err) {
      await p.disconnect().catch(() => {})
      throw err
    }
    producer = p
    return p
  }

  return {
    name: 'kafka',
    async send (messages) {
      const p = await connected()
      try {
        await p.send({ topic: o.topic, acks: -1, messages: messages.map(availabilityMessage) })
      } catch (err) {
        // A fresh producer after a failure: when a first connect timed out, kafkajs keeps a half-open
        // seed broker and fails every later send until disconnect and connect.
        producer = undefined
        await p.disconnect().catch(() => {})
        throw err
      }
    },
    async close () {
      await producer?.disconnect().catch(() => {})
      producer = undefined
    }
  }
}
