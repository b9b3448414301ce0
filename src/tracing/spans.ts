import { context, ROOT_CONTEXT, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type SpanKind } from '@opentelemetry/api'
import { TraceState } from '@opentelemetry/core'
import { formatTraceparent, type TraceContext } from './context.js'

/*
 * Spans through the OpenTelemetry API only. Until a tracer provider is registered (tracing is off
 * unless configured, see provider.ts) the API's no-op tracer answers: a span is one small object
 * that records nothing, and running "in" it calls the function directly.
 */
export const tracer = trace.getTracer('cloudoreg')

/** The context of a stored or received trace, as the remote parent of what runs next. */
export function contextOf (tc: TraceContext): Context {
  const [, traceId, spanId, flags] = tc.traceparent.split('-')
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId,
    spanId,
    traceFlags: Number.parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    traceState: tc.tracestate === null ? undefined : new TraceState(tc.tracestate)
  })
}

/** The W3C form of a span's context; null for the no-op tracer's spans, which have none of their own. */
export function traceContextOfSpan (span: Span): TraceContext | null {
  const sc = span.spanContext()
  if (!trace.isSpanContextValid(sc)) return null
  return { traceparent: formatTraceparent(sc.traceId, sc.spanId, sc.traceFlags), tracestate: sc.traceState?.serialize() || null }
}

export interface SpanOptions {
  kind?: SpanKind
  attributes?: Attributes
  /** The parent; the active context when unset. */
  parent?: Context
}

/**
 * Runs `fn` with a new span active, so that what it calls (undici, pg, nested spans) is its
 * child. A rejection marks the span as an error (its `error.type` from `errorType`) and rethrows.
 */
export async function inSpan<T> (name: string, o: SpanOptions, fn: (span: Span) => Promise<T>, errorType?: (err: unknown) => string | undefined): Promise<T> {
  const parent = o.parent ?? context.active()
  const span = tracer.startSpan(name, { kind: o.kind, attributes: o.attributes }, parent)
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span))
  } catch (err) {
    failed(span, err, errorType?.(err))
    throw err
  } finally {
    span.end()
  }
}

/** Marks a span failed: `error.type` (semantic conventions) and the status, never the message (it may hold upstream text). */
export function failed (span: Span, err: unknown, type?: string): void {
  if (!span.isRecording()) return
  const errorType = type ?? (err as { code?: string, name?: string } | null)?.code ?? (err as Error | null)?.name ?? 'Error'
  span.setAttribute('error.type', errorType)
  span.setStatus({ code: SpanStatusCode.ERROR, message: errorType })
}
