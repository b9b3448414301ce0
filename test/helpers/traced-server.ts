// Test-only entry: the service as src/server.ts runs it (serve), with an in-memory span exporter
// injected through buildApp's options. Every span is written to CLOUDOREG_TEST_SPANS as one JSON line when it starts and again
// when it ends, synchronously: a test that SIGKILLs this process still sees what it had started.
import { appendFileSync } from 'node:fs'
import type { Context } from '@opentelemetry/api'
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type Span, type SpanProcessor } from '@opentelemetry/sdk-trace-base'
import { serve } from '../../src/serve.js'

export interface SpanRecord {
  phase: 'start' | 'end'
  pid: number
  name: string
  kind: number
  traceId: string
  spanId: string
  parentSpanId: string | null
  attributes: Record<string, unknown>
  links: string[]
  status: number
}

const file = process.env.CLOUDOREG_TEST_SPANS!

function write (phase: SpanRecord['phase'], span: ReadableSpan): void {
  const { traceId, spanId } = span.spanContext()
  const record: SpanRecord = {
    phase,
    pid: process.pid,
    name: span.name,
    kind: span.kind,
    traceId,
    spanId,
    parentSpanId: span.parentSpanContext?.spanId ?? null,
    attributes: { ...span.attributes },
    links: span.links.map(l => l.context.traceId),
    status: span.status.code
  }
  appendFileSync(file, JSON.stringify(record) + '\n')
}

const exporter = new InMemorySpanExporter()
const simple = new SimpleSpanProcessor(exporter)
const toFile: SpanProcessor = {
  onStart (span: Span, _parent: Context) { write('start', span) },
  onEnd (span: ReadableSpan) {
    simple.onEnd(span)
    for (const finished of exporter.getFinishedSpans()) write('end', finished)
    exporter.reset()
  },
  forceFlush: async () => simple.forceFlush(),
  shutdown: async () => simple.shutdown()
}

await serve({ spanProcessors: [toFile] })
