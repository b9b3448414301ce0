import type { Dispatcher } from 'undici'
import type { Logger } from '../log.js'
import { call, type CallOptions } from '../upstream/http.js'
import { UpstreamError } from '../upstream/errors.js'

// RHSM's cloud-access contract is inferred from its public API and an older
// prototype; everything cloudoreg assumes about it lives in this file.

export interface RhsmClientOptions {
  /** Includes the version prefix, e.g. https://rhsm.example/v1 */
  baseUrl: string
  dispatcher: Dispatcher
  timeoutMs: number
  attempts: number
  observe?: CallOptions['observe']
  gate?: CallOptions['gate']
}

export interface RhsmClient {
  addAwsAccount: (m: { orgId: string, awsAccountId: string, sourceId: string }) => Promise<void>
  removeSourceAccounts: (m: { orgId: string, sourceId: string }) => Promise<void>
}

/** RHSM's 400 for an AWS account another Red Hat account already verified. */
export function isAccountTakenError (err: unknown): boolean {
  return err instanceof UpstreamError && err.target === 'rhsm' && err.kind === 'rejected' &&
    /already been verified for a different/i.test(err.reason ?? '')
}

export function createRhsmClient (o: RhsmClientOptions): RhsmClient {
  const base = o.baseUrl.replace(/\/+$/, '')
  const common = { target: 'rhsm' as const, dispatcher: o.dispatcher, timeoutMs: o.timeoutMs, attempts: o.attempts, observe: o.observe, gate: o.gate }
  return {
    async addAwsAccount ({ orgId, awsAccountId, sourceId }) {
      await call({
        ...common,
        method: 'POST',
        url: `${base}/cloud_access_providers/AWS/accounts`,
        headers: { 'X-RhsmApi-AccountID': orgId },
        body: [{ id: awsAccountId, nickname: '', verified: true, sourceId }]
      })
    },
    async removeSourceAccounts ({ orgId, sourceId }) {
      try {
        await call({
          ...common,
          method: 'DELETE',
          url: `${base}/cloud_access_providers/accounts?sourceID=${encodeURIComponent(sourceId)}`,
          headers: { 'X-RhsmApi-AccountID': orgId }
        })
      } catch (err) {
        // Nothing mapped for the source is what removal wants.
        if (err instanceof UpstreamError && err.kind === 'not_found') return
        throw err
      }
    }
  }
}

/** RHSM_MODE=dry-run: decide everything, change nothing in RHSM; say what would have changed. */
export function dryRunRhsm (log: Logger): RhsmClient {
  return {
    async addAwsAccount (m) {
      log.info({ rhsm: 'dry-run', ...m }, 'would map the AWS account in RHSM')
    },
    async removeSourceAccounts (m) {
      log.info({ rhsm: 'dry-run', ...m }, 'would remove the source\'s RHSM mapping')
    }
  }
}
