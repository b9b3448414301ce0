import { context } from '@opentelemetry/api'
import type { SourcesClient } from '../sources/client.js'
import { traceHeaders } from '../tracing/context.js'
import { contextOf } from '../tracing/spans.js'
import { UpstreamError } from '../upstream/errors.js'
import type { StatusSink } from './relay.js'

/**
 * PATCHes the application in sources-api, for deployments without Kafka. Each PATCH carries the trace
 * of the event that decided it: with tracing on, undici's instrumentation makes its span there and
 * sends that span's traceparent; with tracing off (`traced` false), the stored context as it is.
 */
export function httpStatusSink (sources: SourcesClient, traced: boolean): StatusSink {
  return {
    name: 'http',
    async send (messages) {
      for (const m of messages) {
        try {
          const tenant = { orgId: m.orgId, accountNumber: m.accountNumber }
          if (m.trace === null) await sources.reportAvailability(m.applicationId, tenant, m.status, m.error)
          else if (traced) await context.with(contextOf(m.trace), () => sources.reportAvailability(m.applicationId, tenant, m.status, m.error))
          else await sources.reportAvailability(m.applicationId, tenant, m.status, m.error, traceHeaders(m.trace))
        } catch (err) {
          // A deleted application has no status left to receive.
          if (!(err instanceof UpstreamError && err.kind === 'not_found')) throw err
        }
      }
    },
    async close () {}
  }
}

/** STATUS_SINK=none: verify and record, tell sources-api nothing (shadow mode). */
export const noStatusSink: StatusSink = {
  name: 'none',
  async send () {},
  async close () {}
}
