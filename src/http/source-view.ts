import { appKey, sourceKey } from '../events/keys.js'
import type { Store } from '../store/index.js'
import type { EventRecord } from '../store/inbox.js'
import type { Registration } from '../store/registrations.js'
import { isParkedNote } from '../upstream/breaker.js'

/** What cloudoreg knows of one source of an org: its registration, and its events still to run. */
export interface SourceView {
  sourceId: string
  registration: Registration | null
  /** Oldest first; the first is running or next to run. */
  pending: EventRecord[]
}

const PENDING_SHOWN = 100

/** The queue keys a source's events may carry. */
export function queueKeysOf (sourceId: string, registration: Registration | null): string[] {
  return registration === null ? [sourceKey(sourceId)] : [appKey(registration.applicationId), sourceKey(sourceId)]
}

/** null when the org has neither a registration nor a waiting event for this source. */
export async function viewSource (store: Store, orgId: string, sourceId: string): Promise<SourceView | null> {
  const registration = await store.registrations.findBySource(orgId, sourceId)
  const pending = await store.inbox.eventsOf(orgId, sourceId, queueKeysOf(sourceId, registration), PENDING_SHOWN, true)
  if (registration === null && pending.length === 0) return null
  return { sourceId, registration, pending }
}

export interface Waiting {
  events: number
  event_ids: number[]
  since: string
  reason: string
  next_attempt_at: string | null
}

/**
 * Why a source's events have not finished, in words: upstreams not configured, a retry and its
 * time, or running now. `missing` names the settings without which nothing runs.
 */
export function waitingFor (pending: EventRecord[], missing: string[], now = Date.now()): Waiting | null {
  const first = pending[0]
  if (first === undefined) return null
  let reason: string
  if (missing.length > 0) reason = `upstreams not configured: ${missing.join(', ')}; the events wait until they are`
  // An upstream outage or a wait it asked for: the event waits at its gate and is let through when it answers again.
  else if (isParkedNote(first.lastError)) reason = first.lastError!
  else if (first.attempts > 0 && first.nextAttemptAt.getTime() > now) {
    reason = `retrying at ${first.nextAttemptAt.toISOString()} after attempt ${first.attempts} failed: ${first.lastError ?? 'unknown error'}`
  } else reason = first.attempts > 0 ? `attempt ${first.attempts + 1} running` : 'being processed'
  if (pending.length > 1) reason += `; ${pending.length - 1} more event${pending.length > 2 ? 's' : ''} queued behind it`
  return {
    events: pending.length,
    event_ids: pending.map(e => e.id),
    since: first.receivedAt.toISOString(),
    reason,
    next_attempt_at: missing.length > 0 ? null : first.nextAttemptAt.toISOString()
  }
}
