import { setTimeout as sleep } from 'node:timers/promises'
import type { Dispatcher } from 'undici'

/**
 * The pace of calls to one upstream in this replica: calls start at least `1 / rate` seconds apart
 * (no bursts, so that replicas that each keep their share never add up to more than the budget).
 * The rate is this replica's share of the budget (its ceiling), lowered by half when the upstream
 * says we call too fast (at most once a second: the calls in flight when it said so answer the same)
 * and raised back towards the ceiling by a twentieth of it per second: additive increase,
 * multiplicative decrease.
 */
export interface RateGate {
  /** Resolves when the next call may start; never rejects. */
  take: () => Promise<void>
  /** The upstream refused a call for its rate. */
  throttled: () => void
  /** This replica's share of the budget, calls per second. */
  setCeiling: (rps: number) => void
  /** Calls per second now. */
  rate: () => number
}

/** From half the ceiling back to all of it in 10 s without throttling. */
const RECOVERY_S = 20
/** Never slower than this, however often throttled (calls per second). */
const FLOOR_RPS = 0.1

export function createRateGate (ceilingRps: number, onCut: (rate: number) => void = () => {}, now: () => number = Date.now, startRps = ceilingRps): RateGate {
  let ceiling = ceilingRps
  let rate = Math.min(ceiling, Math.max(FLOOR_RPS, startRps))
  let next = 0
  let grownAt = now()
  let cutAt = -Infinity

  function grow (t: number): void {
    rate = Math.min(ceiling, rate + ceiling * ((t - grownAt) / 1000) / RECOVERY_S)
    grownAt = t
  }

  return {
    take () {
      const t = now()
      grow(t)
      const at = Math.max(t, next)
      next = at + 1000 / rate
      return at <= t ? Promise.resolve() : sleep(at - t, undefined, { ref: false })
    },
    throttled () {
      const t = now()
      grow(t)
      if (t - cutAt < 1000) return
      cutAt = t
      rate = Math.max(FLOOR_RPS, rate / 2)
      onCut(rate)
    },
    setCeiling (rps) {
      grow(now())
      ceiling = rps
      rate = Math.min(rate, rps)
    },
    rate: () => rate
  }
}

/** A dispatcher whose requests each wait for the gate first: every HTTP call to that upstream, retries included. */
export function gatedDispatcher (dispatcher: Dispatcher, gate: RateGate): Dispatcher {
  return dispatcher.compose(dispatch => (opts, handler) => {
    void gate.take().then(() => dispatch(opts, handler))
    return true
  })
}

export type BudgetedUpstream = 'sts' | 'rhsm' | 'sources'

export interface RateBudgets {
  gates: Record<BudgetedUpstream, RateGate>
  /**
   * Sets this replica's share of each budget: among `replicas` live replicas (at least 1), holding
   * `total` events between them, `mine` of which here. Each replica keeps a floor of
   * `SHARE_FLOOR / replicas` (its status relay and a first event need some), and the rest goes by the
   * work held, so that a replica that leased most of a wave is not held to an equal share while the
   * others have nothing to spend theirs on. With no work anywhere, shares are equal. The shares add up
   * to the budget when the replicas' heartbeats agree; between heartbeats a raised share is reached
   * gradually (see RateGate), while the others' lowered ones take effect at once.
   */
  share: (replicas: number, mine?: number, total?: number) => void
}

/** The part of each budget split equally between live replicas whatever work they hold. */
export const SHARE_FLOOR = 0.2

/**
 * One gate per upstream; `budgets` are the totals across all replicas, calls per second. `onCut` hears
 * of each halving. `startFraction`: the part of each budget the gates start at, growing from there
 * like any raised share. Replicas that share a database start at SHARE_FLOOR of it: a replica that
 * starts before the others have said they are alive counts itself alone, and would otherwise begin at
 * the whole budget.
 */
export function createRateBudgets (budgets: Record<BudgetedUpstream, number>, onCut: (upstream: BudgetedUpstream, rate: number) => void = () => {}, startFraction = 1): RateBudgets {
  const gate = (key: BudgetedUpstream): RateGate => createRateGate(budgets[key], rate => onCut(key, rate), Date.now, budgets[key] * startFraction)
  const gates = { sts: gate('sts'), rhsm: gate('rhsm'), sources: gate('sources') }
  return {
    gates,
    share (replicas, mine = 0, total = 0) {
      const n = Math.max(1, replicas)
      const fraction = total > 0 ? SHARE_FLOOR / n + (1 - SHARE_FLOOR) * Math.min(Math.max(0, mine), total) / total : 1 / n
      for (const key of Object.keys(gates) as BudgetedUpstream[]) gates[key].setCeiling(budgets[key] * fraction)
    }
  }
}
