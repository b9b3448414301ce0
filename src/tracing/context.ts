import { randomBytes } from 'node:crypto'
import { isValidSpanId, isValidTraceId } from '@opentelemetry/api'
import { parseTraceParent, TraceState } from '@opentelemetry/core'

/** W3C trace context as it travels with an event: stored in its inbox row, carried out on its status. */
export interface TraceContext {
  traceparent: string
  tracestate: string | null
}

// W3C allows 512 characters of tracestate at least; a sender's longer one is cut off, not refused.
const MAX_TRACESTATE = 512

/**
 * The trace context a sender attached, or null when it attached none or an invalid one: W3C says an
 * invalid traceparent is ignored (a new trace starts), never a reason to refuse the message.
 */
export function traceContextOf (traceparent: string | undefined, tracestate: string | undefined): TraceContext | null {
  if (traceparent === undefined || traceparent.length > 128) return null
  const parsed = parseTraceParent(traceparent.trim())
  if (parsed === null) return null
  const { traceId, spanId, traceFlags } = parsed
  // All-zero ids are invalid too.
  if (!isValidTraceId(traceId) || !isValidSpanId(spanId)) return null
  let state: string | null = null
  if (tracestate !== undefined && tracestate !== '') {
    // TraceState drops malformed members and keeps at most 32.
    const serialized = new TraceState(tracestate.slice(0, MAX_TRACESTATE)).serialize()
    if (serialized !== '') state = serialized
  }
  return { traceparent: formatTraceparent(traceId, spanId, traceFlags), tracestate: state }
}

export function formatTraceparent (traceId: string, spanId: string, traceFlags: number): string {
  return `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`
}

/** A new trace for an event that arrived with none while nothing records spans: ids for correlation only, not sampled. */
export function newTraceContext (): TraceContext {
  const id = randomBytes(24).toString('hex')
  return { traceparent: formatTraceparent(id.slice(0, 32), id.slice(32), 0), tracestate: null }
}

/** The trace id of a stored traceparent (always version 00, as formatTraceparent writes it). */
export function traceIdOf (traceparent: string | null): string | null {
  return traceparent === null ? null : traceparent.slice(3, 35)
}

/** W3C headers (HTTP, Kafka) carrying a trace context. */
export function traceHeaders (tc: TraceContext): Record<string, string> {
  return tc.tracestate === null ? { traceparent: tc.traceparent } : { traceparent: tc.traceparent, tracestate: tc.tracestate }
}
