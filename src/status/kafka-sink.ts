import { Partitioners, type Producer } from 'kafkajs'
import { kafkaClient, type KafkaConnection } from '../kafka/client.js'
import type { Logger } from '../log.js'
import { availabilityMessage, type StatusSink } from './relay.js'

export interface KafkaSinkOptions {
  connection: KafkaConnection
  topic: string
  log: Logger
}

/** Publishes to platform.sources.status; resolves once every in-sync replica acknowledged. */
export function kafkaStatusSink (o: KafkaSinkOptions): StatusSink {
  const kafka = kafkaClient(o.connection, o.log, 'error')
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
