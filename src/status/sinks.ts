import type { SourcesClient } from '../sources/client.js'
import type { StatusFailure } from '../store/outbox.js'
import { UpstreamError } from '../upstream/errors.js'
import type { StatusSink } from './relay.js'

/** PATCHes the application in sources-api, for deployments without Kafka. */
export function httpStatusSink (sources: SourcesClient): StatusSink {
  return {
    name: 'http',
    async send (messages) {
      const failures: StatusFailure[] = []
      for (const m of messages) {
        try {
          await sources.reportAvailability(m.applicationId, { orgId: m.orgId, accountNumber: m.accountNumber }, m.status, m.error)
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
