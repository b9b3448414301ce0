import type { TraceContext } from '../tracing/context.js'

/** One event as the inbox stores it, whatever channel carried it: a push format, a Kafka record, or cloudoreg itself. */
export interface IncomingEvent {
  eventType: string
  orgId: string
  accountNumber: string | null
  body: Record<string, unknown>
  queueKey: string | null
  /** A redelivery of the same delivery carries the same key. */
  dedupeKey: string
  /** null: the key is a delivery id, remembered for good; else a content hash, remembered this long. */
  dedupeTtlMs: number | null
  deliveryId: string | null
  /** The W3C trace context its sender attached (null or absent: none, or an invalid one; the inbox starts a trace). */
  trace?: TraceContext | null
  /** How it arrived (a span attribute): the push format; a Kafka record (`kafka-record`) pushed in a record batch or consumed directly. */
  format?: string
}

/** Event type of cloudoreg's own re-verification, queued by the availability check and the operator routes. */
export const CHECK_EVENT = 'cloudoreg.check'

/** Event type of a repair queued by a real reconciliation run (src/reconcile), behind the source's other events. */
export const RECONCILE_EVENT = 'cloudoreg.reconcile'

/**
 * The channel an event came in by, which its dedupe key belongs to: the direct Kafka consumer, or a
 * push by how it authenticated: `token` (bearer or dapr-api-token), `signed` (Standard Webhooks),
 * `open` (no push authentication configured).
 */
export type PushChannel = 'token' | 'signed' | 'open'
