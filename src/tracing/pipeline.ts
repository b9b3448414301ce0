import { SpanKind, type Span } from '@opentelemetry/api'
import type { EventContext, EventHandler } from '../pipeline/runner.js'
import type { EventEnd, Outcome } from '../store/outcomes.js'
import { UpstreamError } from '../upstream/errors.js'
import { contextOf, inSpan, traceContextOfSpan } from './spans.js'

/** `error.type` of a failed attempt: which upstream and how (`sts.transient`), else the error's name. */
export function errorTypeOf (err: unknown): string {
  if (err instanceof UpstreamError) return `${err.target}.${err.kind}`
  return (err as Error | null)?.name ?? 'Error'
}

/** What an attempt decided, on its span. */
function describeOutcome (span: Span, ctx: EventContext, outcome: Outcome): Outcome {
  span.setAttribute('cloudoreg.outcome', outcome.note)
  const code = outcome.registration?.lastErrorCode
  if (code != null) span.setAttribute('cloudoreg.error_code', code)
  if (outcome.roleSessionName !== undefined) span.setAttribute('cloudoreg.role_session_name', outcome.roleSessionName)
  if (ctx.sourceId !== null) span.setAttribute('cloudoreg.source_id', ctx.sourceId)
  return outcome
}

/**
 * A handler whose every attempt is a `process <event type>` span (CONSUMER) in the event's own trace.
 *
 * Child, not link: the span's parent is the context stored with the event at ingest, so every
 * attempt (each on whichever replica held the source's lease then, minutes or hours apart, after a
 * crash or a takeover) and every upstream call beneath it lands in the one trace that started
 * with the sender, and the trace id in the logs and the history finds all of it. Messaging
 * conventions link when one process span handles many messages; here one span handles one event,
 * where they allow the creation context as parent. The price is a long trace when retries span an
 * hour, which trace backends (Jaeger, Tempo) hold as one trace all the same.
 */
export function tracedHandler (eventType: string, handler: EventHandler, replica: string): EventHandler {
  const options = (ctx: EventContext, operation: string): Parameters<typeof inSpan>[1] => ({
    kind: SpanKind.CONSUMER,
    parent: contextOf(ctx.event.trace),
    attributes: {
      'messaging.system': 'cloudoreg',
      'messaging.operation.type': 'process',
      'messaging.operation.name': operation,
      'messaging.destination.name': 'inbox',
      'messaging.message.id': String(ctx.event.id),
      'cloudoreg.event.type': eventType,
      'cloudoreg.attempt': ctx.attempt,
      'cloudoreg.replica': replica,
      ...(ctx.sourceId !== null ? { 'cloudoreg.source_id': ctx.sourceId } : {})
    }
  })
  return {
    handle: async ctx => inSpan(`process ${eventType}`, options(ctx, 'process'), async span => describeOutcome(span, ctx, await handler.handle(ctx)), errorTypeOf),
    exhausted: async (ctx, lastError) => inSpan(`give up ${eventType}`, options(ctx, 'give up'), async span => describeOutcome(span, ctx, await handler.exhausted(ctx, lastError)), errorTypeOf)
  }
}

/**
 * The outcome's statement (one lease-fenced round trip) as a span of the event's trace; its context goes with the status row,
 * so that the status message continues the trace. pg's span of the statement is its child.
 */
export function tracedRecordOutcome (record: (end: EventEnd, outcome: Outcome) => Promise<void>): (end: EventEnd, outcome: Outcome) => Promise<void> {
  return async (end, outcome) => inSpan('record outcome', {
    parent: contextOf(end.trace),
    attributes: { 'messaging.message.id': String(end.eventId), 'cloudoreg.state': end.state, 'cloudoreg.outcome': outcome.note, 'cloudoreg.attempts': end.attempts }
  }, async span => record({ ...end, trace: traceContextOfSpan(span) ?? end.trace }, outcome), errorTypeOf)
}
