import { context } from '@opentelemetry/api'
import type { SourcesClient } from '../sources/client.js'
import { contextOf } from '../tracing/spans.js'
import { UpstreamError } from '../upstream/errors.js'
import type { StatusSink } from './relay.js'

/** PATCHes the application in sources-api, for deployments without Kafka. */
export function httpStatusSink (sources: SourcesClient): StatusSink {
  return {
    name: 'http',
    async send (messages) {
      for (const m of messages) {
        try {
          // In the trace of the event that decided it: undici's instrumentation makes the PATCH's span there and sends its traceparent.
          const report = (): Promise<void> => sources.reportAvailability(m.applicationId, { orgId: m.orgId, accountNumber: m.accountNumber }, m.status, m.error)
          await (m.trace === null ? report() : context.with(contextOf(m.trace), report))
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
