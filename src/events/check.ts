import { randomUUID } from 'node:crypto'
import type { Tenant } from '../identity.js'
import { CHECK_EVENT, RECONCILE_EVENT, type IncomingEvent } from './event.js'
import { sourceKey } from './keys.js'

/** Who asked for a re-verification. */
export type CheckRequester = 'sources-api' | 'operator' | 'customer'

const CHECK_NAMES: Record<CheckRequester, string> = {
  'sources-api': 'availability check by sources-api',
  operator: 're-verification requested by an operator',
  customer: 'check requested by the customer'
}

/** What an event was, in words for a timeline: who asked for a check, and which event a replay copies. */
export function describeEvent (e: { eventType: string, body: Record<string, unknown>, replayOf: number | null }): string {
  const requester = e.body.requested_by as CheckRequester
  const name = e.eventType === CHECK_EVENT
    ? CHECK_NAMES[requester] ?? 'check'
    : e.eventType === RECONCILE_EVENT ? `repair by reconciliation: ${String(e.body.action).slice(0, 20)} (${String(e.body.class).slice(0, 40)})` : e.eventType
  return e.replayOf === null ? name : `${name} (replay of event ${e.replayOf})`
}

/**
 * A re-verification of a source, queued like any pushed event so that it runs behind the source's others.
 * sources-api's checks of one source within a minute are one delivery: the first is stored, the others
 * are its duplicates. An operator's always runs.
 */
export function checkEvent (tenant: Tenant, sourceId: string, requestedBy: CheckRequester): IncomingEvent {
  return {
    eventType: CHECK_EVENT,
    orgId: tenant.orgId,
    accountNumber: tenant.accountNumber,
    body: { source_id: sourceId, requested_by: requestedBy },
    queueKey: sourceKey(sourceId),
    dedupeKey: requestedBy === 'sources-api' ? `check:${tenant.orgId}:${sourceId}` : `check:${randomUUID()}`,
    dedupeTtlMs: 60_000,
    deliveryId: null
  }
}
