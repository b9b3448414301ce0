import type { SourcesClient } from '../sources/client.js'
import { UpstreamError } from '../upstream/errors.js'
import type { StatusSink } from './relay.js'

/** PATCHes the application in sources-api, for deployments without Kafka. */
export function httpStatusSink (sources: SourcesClient): StatusSink {
  return {
    name: 'http',
    async send (messages) {
      for (const m of messages) {
        try {
          await sources.reportAvailability(m.applicationId, { orgId: m.orgId, accountNumber: m.accountNumber }, m.status, m.error)
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
