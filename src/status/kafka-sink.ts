import { Kafka, logLevel, Partitioners, type Producer } from 'kafkajs'
import type { Logger } from '../log.js'
import { availabilityMessage, type StatusSink } from './relay.js'

export interface KafkaSinkOptions {
  brokers: string[]
  topic: string
  log: Logger
}

/** Publishes to platform.sources.status; resolves once every in-sync replica acknowledged. */
export function kafkaStatusSink (o: KafkaSinkOptions): StatusSink {
  const kafka = new Kafka({
    clientId: 'cloudoreg',
    brokers: o.brokers,
    connectionTimeout: 3000,
    requestTimeout: 10_000,
    // The relay retries whole sends with its own backoff; kafkajs retries only briefly.
    retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2000 },
    logLevel: logLevel.ERROR,
    logCreator: () => ({ namespace, log }) => o.log.warn({ kafka: namespace }, log.message)
  })
  let producer: Producer | undefined

  async function connected (): Promise<Producer> {
    if (producer !== undefined) return producer
    const p = kafka.producer({ allowAutoTopicCreation: true, createPartitioner: Partitioners.DefaultPartitioner, idempotent: false, maxInFlightRequests: 1 })
    await p.connect()
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
        // A fresh producer after a failure: kafkajs can keep stale broker connections after an outage.
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
