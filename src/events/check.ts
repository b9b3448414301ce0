import { randomUUID } from 'node:crypto'
import type { Tenant } from '../identity.js'
import { CHECK_EVENT, type IncomingEvent } from './event.js'
import { sourceKey } from './keys.js'

/** A re-verification of a source, queued like any pushed event so that it runs behind the source's others. */
export function checkEvent (tenant: Tenant, sourceId: string, requestedBy: 'sources-api' | 'operator'): IncomingEvent {
  return {
    eventType: CHECK_EVENT,
    orgId: tenant.orgId,
    accountNumber: tenant.accountNumber,
    body: { source_id: sourceId, requested_by: requestedBy },
    queueKey: sourceKey(sourceId),
    dedupeKey: `check:${randomUUID()}`,
    dedupeTtlMs: 60_000,
    deliveryId: null
  }
}
