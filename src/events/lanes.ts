import { CHECK_EVENT, RECONCILE_EVENT } from './event.js'

/**
 * Which work runs first when there is more than the slots can take. The lane is stored on the inbox
 * row when the event is inserted, whichever way it came (push, Kafka, an operator route, a replay),
 * and the scheduler reads it to choose which SOURCE runs next; a source's own events always run in
 * arrival order, whatever their lanes.
 */
export const LANES = {
  /** What a customer did or asked for: create, authentication update or destroy, pause, unpause, a check from the console. */
  customer: 0,
  /** sources-api's periodic availability re-checks: bulk by nature (a wave every round), nobody is waiting on one. */
  recheck: 1,
  /** Operators' bulk work: replays, re-verifications, reconciliation's repairs. */
  bulk: 2
} as const

export type Lane = typeof LANES[keyof typeof LANES]
export type LaneName = keyof typeof LANES

export const LANE_NAMES: Record<Lane, LaneName> = { 0: 'customer', 1: 'recheck', 2: 'bulk' }

/** The one rule that puts an event in a lane: from its type, who asked for it (checks) and whether it is a replay. */
export function laneOf (e: { eventType: string, body: Record<string, unknown>, replayOf: number | null }): Lane {
  if (e.replayOf !== null || e.eventType === RECONCILE_EVENT) return LANES.bulk
  if (e.eventType !== CHECK_EVENT) return LANES.customer
  switch (e.body.requested_by) {
    case 'sources-api': return LANES.recheck
    case 'operator': return LANES.bulk
    default: return LANES.customer
  }
}
