import { context } from '@opentelemetry/api'
import type { SourcesClient } from '../sources/client.js'
import type { StatusFailure } from '../store/outbox.js'
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
    async send (messages, deadline) {
      const failures: StatusFailure[] = []
      for (const m of messages) {
        // A slow sources-api must not keep the batch's transaction open past PostgreSQL's idle limit:
        // what is left goes in the next round.
        if (Date.now() >= deadline) {
          failures.push({ id: m.id, error: 'not sent before the round\'s deadline', permanent: false, deferred: true })
          continue
        }
        try {
          const tenant = { orgId: m.orgId, accountNumber: m.accountNumber }
          if (m.trace === null) await sources.reportAvailability(m.applicationId, tenant, m.status, m.error)
          else if (traced) await context.with(contextOf(m.trace), () => sources.reportAvailability(m.applicationId, tenant, m.status, m.error))
          else await sources.reportAvailability(m.applicationId, tenant, m.status, m.error, traceHeaders(m.trace))
        } catch (err) {
          if (!(err instanceof UpstreamError)) throw err
          // A deleted application has no status left to receive.
          if (err.kind === 'not_found') continue
          // sources-api unreachable, or refusing our own credentials: every message waits, none is to blame.
          if (err.kind === 'misconfigured' || (err.kind === 'transient' && err.status === undefined)) throw err
          // This message's own failure (an answer about it, or a request that cannot be built): the others go on.
          failures.push({ id: m.id, error: err.message, permanent: err.kind === 'rejected' })
        }
      }
      return failures
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
