import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api'
import { Partitioners, type Producer } from 'kafkajs'
import { kafkaClient, type KafkaConnection } from '../kafka/client.js'
import type { Logger } from '../log.js'
import type { StatusMessage } from '../store/outbox.js'
import { contextOf, failed, tracer, traceContextOfSpan } from '../tracing/spans.js'
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
      // A `send <topic>` span per message (messaging conventions), in the trace of the event that decided it; the
      // message's traceparent header names that span (while tracing is off, the stored context as it is).
      const spans = messages.map(m => tracer.startSpan(`send ${o.topic}`, {
        kind: SpanKind.PRODUCER,
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'send',
          'messaging.destination.name': o.topic,
          'messaging.batch.message_count': messages.length,
          'cloudoreg.application_id': m.applicationId,
          'cloudoreg.status': m.status
        }
      }, m.trace === null ? ROOT_CONTEXT : contextOf(m.trace)))
      const traced = messages.map((m, i): StatusMessage => ({ ...m, trace: traceContextOfSpan(spans[i]) ?? m.trace }))
      try {
        await p.send({ topic: o.topic, acks: -1, messages: traced.map(availabilityMessage) })
      } catch (err) {
        for (const span of spans) failed(span, err)
        // A fresh producer after a failure: when a first connect timed out, kafkajs keeps a half-open
        // seed broker and fails every later send until disconnect and connect.
        producer = undefined
        await p.disconnect().catch(() => {})
        throw err
      } finally {
        for (const span of spans) span.end()
      }
    },
    async close () {
      await producer?.disconnect().catch(() => {})
      producer = undefined
    }
  }
}
