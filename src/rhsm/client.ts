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
}

export interface RhsmClient {
  addAwsAccount: (m: { orgId: string, awsAccountId: string, sourceId: string }) => Promise<void>
  removeSourceAccounts: (m: { orgId: string, sourceId: string }) => Promise<void>
  /** The org's enabled AWS provider accounts, one page at a time (reconciliation reads, never holds, the whole list). */
  enabledAwsAccounts: (orgId: string, pageSize: number) => AsyncGenerator<EnabledAccount[]>
}

/** Pages of one org's enabled accounts read at most. */
const MAX_PAGES = 100_000

/** One provider account RHSM holds for an org; `sourceId` only for accounts created through sources. */
export interface EnabledAccount {
  id: string
  sourceId: string | null
  verified: boolean
}

/** A page of `GET /cloud_access_providers/enabled`: its AWS accounts, and whether a next page may follow. */
function enabledPage (body: unknown, limit: number): { accounts: EnabledAccount[], more: boolean } {
  const providers = (body as { body?: unknown } | null)?.body
  if (!Array.isArray(providers)) throw new UpstreamError('rhsm', 'transient', 'enabled accounts: unexpected response shape')
  const accounts: EnabledAccount[] = []
  let listed = 0
  for (const provider of providers as Array<Record<string, unknown> | null>) {
    const items = Array.isArray(provider?.accounts) ? provider.accounts as Array<Record<string, unknown> | null> : []
    listed += items.length
    if (provider?.shortName !== 'AWS') continue
    for (const a of items) {
      if (typeof a?.id !== 'string') continue
      accounts.push({ id: a.id, sourceId: typeof a.sourceId === 'string' && a.sourceId !== '' ? a.sourceId : null, verified: a.verified === true })
    }
  }
  // `pagination.count` is the size of this page: a full page may have a next one.
  return { accounts, more: listed >= limit }
}

/** RHSM's 400 for an AWS account another Red Hat account already verified. */
export function isAccountTakenError (err: unknown): boolean {
  return err instanceof UpstreamError && err.target === 'rhsm' && err.kind === 'rejected' &&
    /already been verified for a different/i.test(err.reason ?? '')
}

export function createRhsmClient (o: RhsmClientOptions): RhsmClient {
  const base = o.baseUrl.replace(/\/+$/, '')
  const common = { target: 'rhsm' as const, dispatcher: o.dispatcher, timeoutMs: o.timeoutMs, attempts: o.attempts, observe: o.observe }
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
    },
    async * enabledAwsAccounts (orgId, pageSize) {
      for (let page = 0, offset = 0; ; page++, offset += pageSize) {
        // An answer that ignores `offset` must not keep the caller paging for ever.
        if (page >= MAX_PAGES) throw new UpstreamError('rhsm', 'transient', `enabled accounts: more than ${MAX_PAGES} pages`)
        const res = await call({
          ...common,
          method: 'GET',
          url: `${base}/cloud_access_providers/enabled?limit=${pageSize}&offset=${offset}`,
          headers: { 'X-RhsmApi-AccountID': orgId }
        })
        const { accounts, more } = enabledPage(res.body, pageSize)
        yield accounts
        if (!more) return
      }
    }
  }
}

/** RHSM_MODE=dry-run: decide everything, change nothing in RHSM; say what would have changed. Reads go to `live`. */
export function dryRunRhsm (log: Logger, live: Pick<RhsmClient, 'enabledAwsAccounts'>): RhsmClient {
  return {
    enabledAwsAccounts: (orgId, pageSize) => live.enabledAwsAccounts(orgId, pageSize),
    async addAwsAccount (m) {
      log.info({ rhsm: 'dry-run', ...m }, 'would map the AWS account in RHSM')
    },
    async removeSourceAccounts (m) {
      log.info({ rhsm: 'dry-run', ...m }, 'would remove the source\'s RHSM mapping')
    }
  }
}
