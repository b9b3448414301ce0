import { AsyncLocalStorage } from 'node:async_hooks'
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
  /**
   * Resolves when the next call may start; never rejects. Waiting calls start by their caller's
   * priority (withCallPriority), in arrival order within one.
   */
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
/**
 * How late a call may start and still keep the gate's cadence (at least half a turn): a timer fires a
 * millisecond or more after it was asked to, and at high rates many turns fall within that.
 */
const SLACK_MS = 4
/** Priorities a gate tells apart (0 first); the lanes are three. */
const PRIORITIES = 4

const callerPriority = new AsyncLocalStorage<number>()

/**
 * Runs `fn` with its calls ahead of those of a larger `priority` (0 first) at every rate gate, so that
 * under a binding budget a customer's call does not wait behind a wave of re-checks already waiting
 * at the gate (the runner passes the event's lane). Calls made outside it have priority 0.
 */
export function withCallPriority<T> (priority: number, fn: () => T): T {
  return callerPriority.run(priority, fn)
}

export function createRateGate (ceilingRps: number, onCut: (rate: number) => void = () => {}, now: () => number = Date.now, startRps = ceilingRps): RateGate {
  let ceiling = ceilingRps
  let rate = Math.min(ceiling, Math.max(FLOOR_RPS, startRps))
  /** When the last call started, on the gate's cadence: a timer firing late does not slow the pace. */
  let last = -Infinity
  let grownAt = now()
  let cutAt = -Infinity
  /** The calls waiting for their turn, by priority, in arrival order within one. */
  const waiting: Array<Array<() => void>> = Array.from({ length: PRIORITIES }, () => [])
  /** Set exactly while calls are waiting. */
  let timer: NodeJS.Timeout | undefined

  function grow (t: number): void {
    rate = Math.min(ceiling, rate + ceiling * ((t - grownAt) / 1000) / RECOVERY_S)
    grownAt = t
  }
  const due = (): number => last + 1000 / rate
  /**
   * A call starts at `t`, at or after its due time. Late by less than the slack (a timer's delay), it
   * keeps the cadence; later than that (the gate was idle), the cadence starts again from `t`.
   */
  function start (t: number): void {
    const d = due()
    last = t - d < Math.max(SLACK_MS, 500 / rate) ? d : t
  }
  /** Lets the waiting calls whose turns have come through, the first priority first. */
  function pump (): void {
    timer = undefined
    const t = now()
    grow(t)
    for (let queue = waiting.find(q => q.length > 0); queue !== undefined && t >= due(); queue = waiting.find(q => q.length > 0)) {
      start(t)
      queue.shift()!()
    }
    // Unreferenced, like a sleep: a call waiting at shutdown does not keep the process alive.
    if (waiting.some(q => q.length > 0)) timer = setTimeout(pump, Math.max(0, due() - t)).unref()
  }

  return {
    take () {
      const t = now()
      grow(t)
      if (timer === undefined && t >= due()) {
        start(t)
        return Promise.resolve()
      }
      const priority = Math.min(PRIORITIES - 1, Math.max(0, Math.trunc(callerPriority.getStore() ?? 0)))
      return new Promise(resolve => {
        waiting[priority].push(resolve)
        timer ??= setTimeout(pump, Math.max(0, due() - t)).unref()
      })
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
