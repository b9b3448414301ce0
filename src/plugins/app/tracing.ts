import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { tracedAppend } from '../../tracing/ingest.js'
import { startTracing, tracingEnabled, type TracingOptions } from '../../tracing/provider.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Whether spans are recorded (an OTLP endpoint or an injected processor); the pipeline wraps its steps then. */
    tracing: { enabled: boolean }
  }
}

/**
 * OpenTelemetry, off unless configured: nothing registered, no exporter, no span kept. On, the
 * SDK and its instrumentations (see provider.ts), `@fastify/otel` for the routes registered
 * after this plugin, and an `ingest` span around every inbox append.
 */
async function tracing (app: FastifyInstance, options: Omit<TracingOptions, 'config'>): Promise<void> {
  const o = { ...options, config: app.config }
  const enabled = tracingEnabled(o)
  app.decorate('tracing', { enabled })
  if (!enabled) return
  const t = startTracing(o)
  await app.register(t.fastify.plugin())
  const inbox = app.store.inbox
  inbox.append = tracedAppend(inbox.append.bind(inbox))
  // After every other plugin's close: the spans of the drain are flushed too.
  app.addHook('onClose', async () => { await t.shutdown() })
  app.log.info({ serviceName: o.config.OTEL_SERVICE_NAME ?? 'cloudoreg', exporting: o.config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? o.config.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'injected' }, 'tracing on')
}

export default fp(tracing, { name: 'tracing', dependencies: ['store'] })
