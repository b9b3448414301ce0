import { FastifyOtelInstrumentation } from '@fastify/otel'
import { context, propagation, trace, type TracerProvider } from '@opentelemetry/api'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg'
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node'
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions'
import pg from 'pg'
import type { Config } from '../config.js'

export interface TracingOptions {
  config: Config
  version: string
  /** Where spans go instead of (or besides) OTLP; tests pass an in-memory exporter's processor. */
  spanProcessors?: SpanProcessor[]
}

export interface Tracing {
  /** The Fastify plugin of `@fastify/otel`: a span per request, continuing the caller's traceparent. */
  fastify: FastifyOtelInstrumentation
  /** Flushes what is buffered and unregisters everything, so that the process is as if tracing never ran. */
  shutdown: () => Promise<void>
}

/** Tracing runs only when something receives the spans: an OTLP endpoint, or a processor handed in. */
export function tracingEnabled (o: TracingOptions): boolean {
  return o.config.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || o.config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined ||
    (o.spanProcessors?.length ?? 0) > 0
}

/**
 * The OpenTelemetry SDK, registered for the process: the tracer provider (sampler from
 * OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, read by the SDK), the async-hooks context manager,
 * the W3C trace-context propagator, and the instrumentations of what cloudoreg calls: undici
 * (sources-api, RHSM; they also inject traceparent into the requests) and pg. Only called when
 * `tracingEnabled`; otherwise nothing is registered and the API's no-op tracer answers.
 */
export function startTracing (o: TracingOptions): Tracing {
  const { config } = o
  const spanProcessors = [...(o.spanProcessors ?? [])]
  // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT itself.
  if (config.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined) {
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter()))
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.OTEL_SERVICE_NAME ?? 'cloudoreg', [ATTR_SERVICE_VERSION]: o.version }),
    spanProcessors
  })
  provider.register()
  // Only spans inside a traced operation (an event, a request): lease polling and the like start no traces of their own.
  const pgInstrumentation = new PgInstrumentation({ requireParentSpan: true })
  const fastify = new FastifyOtelInstrumentation({ ignorePaths: ({ url }) => url === '/healthz' || url === '/readyz' || url === '/metrics' })
  const unregister = registerInstrumentations({
    tracerProvider: provider as TracerProvider,
    instrumentations: [new UndiciInstrumentation({ requireParentforSpans: true }), pgInstrumentation, fastify]
  })
  // pg was imported as an ES module before this ran, so the require hook never sees it: patch the loaded module.
  const pgModule = pgInstrumentation.getModuleDefinitions().find(d => d.name === 'pg')!
  pgModule.patch?.(pg)
  return {
    fastify,
    async shutdown () {
      pgModule.unpatch?.(pg)
      unregister()
      await provider.shutdown()
      trace.disable()
      context.disable()
      propagation.disable()
    }
  }
}
