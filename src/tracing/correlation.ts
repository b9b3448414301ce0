import type { EventContext } from '../pipeline/runner.js'
import { numericId, SOURCE_KEY_PREFIX } from '../events/keys.js'
import type { InboxEvent } from '../store/inbox.js'
import { traceIdOf } from './context.js'

export interface Correlation {
  eventId: number
  traceId: string
  sourceId?: string
}

/**
 * What every log line about an event carries, so that one search finds an event's whole story:
 * its inbox id, its trace id (the one the history route and the trace backend show) and, when the
 * event names it, its source. Events that name only an application learn their source from
 * sources-api: `knowSource` adds it then.
 */
export function correlationOf (event: InboxEvent): Correlation {
  const { body, queueKey } = event
  const sourceId = numericId(event.eventType === 'Source.destroy' ? body.id : body.source_id) ??
    (queueKey?.startsWith(SOURCE_KEY_PREFIX) === true ? queueKey.slice(SOURCE_KEY_PREFIX.length) : null)
  const traceId = traceIdOf(event.trace.traceparent)!
  return sourceId === null ? { eventId: event.id, traceId } : { eventId: event.id, traceId, sourceId }
}

/**
 * The source of the event being handled is now known (read from sources-api, which overrides what
 * the event's body claimed): it is recorded with the event and goes on every later log line about it.
 */
export function knowSource (ctx: EventContext, sourceId: string): void {
  if (ctx.sourceId === sourceId || sourceId === '') return
  ctx.sourceId = sourceId
  ctx.log = ctx.log.child({ sourceId })
}
