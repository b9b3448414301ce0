import { context, SpanKind, trace, type Link } from '@opentelemetry/api'
import type { IncomingEvent } from '../events/event.js'
import type { AppendResult, Inbox } from '../store/inbox.js'
import { contextOf, failed, tracer, traceContextOfSpan } from './spans.js'

/**
 * The inbox's append with an `ingest` span per event (PRODUCER: it puts the event on the inbox,
 * the queue the scheduler consumes). Its parent is the trace context the event carried, else the
 * active one (the push request's span, itself continuing the request's traceparent), else none: a
 * new trace. The span's context is what the inbox stores, so the event's processing, on any
 * replica and however late, continues this trace under its ingest.
 */
export function tracedAppend (append: Inbox['append']): Inbox['append'] {
  return async (events: IncomingEvent[]): Promise<AppendResult> => {
    const active = context.active()
    const request = trace.getSpanContext(active)
    const spans = events.map(e => {
      // The event's own context wins; the request that carried it is linked.
      const links: Link[] | undefined = e.trace != null && request !== undefined ? [{ context: request }] : undefined
      const span = tracer.startSpan('ingest', {
        kind: SpanKind.PRODUCER,
        links,
        attributes: {
          'messaging.system': 'cloudoreg',
          'messaging.operation.type': 'send',
          'messaging.operation.name': 'ingest',
          'messaging.destination.name': 'inbox',
          'cloudoreg.event.type': e.eventType,
          'cloudoreg.format': e.format ?? 'internal',
          ...(e.deliveryId !== null ? { 'cloudoreg.delivery_id': e.deliveryId } : {})
        }
      }, e.trace != null ? contextOf(e.trace) : active)
      e.trace = traceContextOfSpan(span) ?? e.trace
      return span
    })
    try {
      const ids = await append(events)
      ids.forEach((id, i) => {
        spans[i].setAttribute('cloudoreg.dedupe', id === null ? 'duplicate' : 'stored')
        if (id !== null) spans[i].setAttribute('messaging.message.id', String(id))
      })
      return ids
    } catch (err) {
      for (const span of spans) failed(span, err)
      throw err
    } finally {
      for (const span of spans) span.end()
    }
  }
}
