import { BrokenCircuitError, circuitBreaker, CircuitState, handleWhen, SamplingBreaker, type CircuitBreakerPolicy } from 'cockatiel'
import type { Logger } from '../log.js'
import { UpstreamError, type UpstreamTarget } from './errors.js'

export interface BreakerSettings {
  /** The breaker opens when more than this share (0 to 1, exclusive) of the calls in the window failed... */
  failureRate: number
  windowMs: number
  /** ...and at least this many calls were made in the window. */
  minCalls: number
  /** How long an open breaker refuses calls before one probe may test the upstream. */
  openMs: number
  /** The longest wait an upstream's Retry-After or X-RateLimit-Delay can impose. */
  maxHoldMs: number
}

export type BreakerState = 'closed' | 'half-open' | 'open'

/** As `cloudoreg_upstream_breaker_state` shows it. */
export const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 }

export interface GateStats {
  /** The gate's key: `sources`, `rhsm`, `sts:<region>`. */
  target: string
  state: BreakerState
  /** Events parked here. */
  waiting: number
  /** Seconds the breaker has spent not closed, since start. */
  openSeconds: number
}

/** Called once the attempt a gate let through has ended. */
export type Release = () => void

/**
 * The gate of one upstream target: a circuit breaker (cockatiel's, failure rate over a sampling
 * window with a minimum number of calls, one probe when half-open) plus what cockatiel has not:
 * a hold (the upstream's Retry-After) and a line of parked events, released in the order they came.
 */
export interface Gate {
  key: string
  /** One request to the upstream; refused at once (an UpstreamError naming this gate) while open or held. */
  run: <T>(fn: () => Promise<T>) => Promise<T>
  /** Open, half-open or held: an event whose attempt failed here waits instead of spending attempts. */
  blocked: () => boolean
  /**
   * Waits in line until the upstream may be called again: all at once when the breaker closes or a
   * hold ends, one at a time (a probe) when an open breaker may be tested. Resolves undefined when
   * `signal` aborts. The caller calls the release once its attempt has ended.
   */
  park: (signal: AbortSignal) => Promise<Release | undefined>
  /** Another replica's hold (already validated): no call until `until` (epoch ms), capped like our own; not published again. */
  holdUntil: (until: number) => void
  stats: () => GateStats
  close: () => void
}

export interface GateOptions {
  key: string
  target: UpstreamTarget
  settings: BreakerSettings
  /** Whether a failed call says the upstream is down (5xx, no answer): only those count. */
  isOutage: (err: Error) => boolean
  log: Logger
  /** Hears each hold this gate takes from an upstream's answer (epoch ms), to share it with the other replicas. */
  onHold?: (until: number) => void
}

const PARKED = 'waiting for upstream '

/** What the store says of an event waiting at a gate (the status API shows it as the reason). */
export function parkedNote (key: string, error: string): string {
  return `${PARKED}${key}, no attempt spent: ${error}`.slice(0, 1000)
}

export function isParkedNote (lastError: string | null): boolean {
  return lastError?.startsWith(PARKED) === true
}

/** The event whose failure `err` is should wait at this gate rather than spend an attempt. */
export function parkingFor (gates: ReadonlyMap<string, Gate>, err: unknown): Gate | undefined {
  if (!(err instanceof UpstreamError) || err.gate === undefined) return undefined
  const gate = gates.get(err.gate)
  return gate !== undefined && (err.throttled || gate.blocked()) ? gate : undefined
}

export function createGate (o: GateOptions): Gate {
  const { settings: s, log } = o
  // SamplingBreaker's window is whole buckets (at least 5, at most a second each); its minimum is a rate over it.
  const buckets = Math.max(5, Math.ceil(s.windowMs / 1000))
  const windowMs = Math.round(s.windowMs / buckets) * buckets
  const policy: CircuitBreakerPolicy = circuitBreaker(handleWhen(o.isOutage), {
    halfOpenAfter: s.openMs,
    breaker: new SamplingBreaker({ threshold: s.failureRate, duration: windowMs, minimumRps: s.minCalls * 1000 / windowMs })
  })
  const waiters: Array<(release: Release) => void> = []
  /** The parked event let through to probe an open breaker, until its attempt ends. */
  let probing = false
  let holdUntil = 0
  /** When the breaker last opened (or re-opened after a failed probe). */
  let openedAt = 0
  /** When it left closed; null while closed. */
  let openSince: number | null = null
  let openMsTotal = 0
  let timer: NodeJS.Timeout | undefined
  let timerAt = Infinity
  let closed = false

  function wakeAt (at: number): void {
    if (closed || at >= timerAt) return
    clearTimeout(timer)
    timerAt = at
    timer = setTimeout(() => {
      timerAt = Infinity
      pump()
    }, Math.max(0, at - Date.now())).unref()
  }

  /** Lets waiting events go as far as the upstream's state allows. */
  function pump (): void {
    if (closed) return
    const now = Date.now()
    if (now < holdUntil) return wakeAt(holdUntil)
    if (policy.state === CircuitState.Closed) {
      for (const release of waiters.splice(0)) release(() => {})
      return
    }
    // Half-open: a probe is in flight; its end opens or closes the breaker, which pumps again.
    if (probing || waiters.length === 0 || policy.state !== CircuitState.Open) return
    if (now < openedAt + s.openMs) return wakeAt(openedAt + s.openMs)
    probing = true
    let released = false
    waiters.shift()!(() => {
      if (released) return
      released = true
      probing = false
      pump()
    })
  }

  policy.onBreak(() => {
    openedAt = Date.now()
    if (openSince === null) {
      openSince = openedAt
      log.warn({ target: o.key, waiting: waiters.length, openMs: s.openMs }, `upstream ${o.key} failing: circuit opened; events that need it wait, spending no attempts, and one probe tests it every ${s.openMs} ms`)
    }
    wakeAt(openedAt + s.openMs)
  })
  policy.onReset(() => {
    const now = Date.now()
    const seconds = openSince === null ? 0 : (now - openSince) / 1000
    if (openSince !== null) openMsTotal += now - openSince
    openSince = null
    log.info({ target: o.key, openSeconds: seconds, released: waiters.length }, `upstream ${o.key} answers again: circuit closed; waiting events released in order`)
    pump()
  })

  function refusal (why: string, throttled: boolean): UpstreamError {
    const err = new UpstreamError(o.target, 'transient', `not called: ${why}`)
    err.gate = o.key
    err.throttled = throttled
    err.refused = true
    return err
  }

  /** Whether this extends the hold (a shorter or equal one, an echo of our own included, changes nothing). */
  function hold (until: number, from: string): boolean {
    const now = Date.now()
    until = Math.min(until, now + s.maxHoldMs)
    // Written so that NaN (a hostile header or payload) extends nothing.
    if (!(until > holdUntil && until > now)) return false
    if (now >= holdUntil) log.warn({ target: o.key, waitMs: until - now }, `upstream ${o.key} asked ${from} to wait: no calls to it until ${new Date(until).toISOString()}`)
    holdUntil = until
    wakeAt(until)
    return true
  }

  return {
    key: o.key,
    async run (fn) {
      if (Date.now() < holdUntil) throw refusal(`${o.key} asked to wait until ${new Date(holdUntil).toISOString()}`, true)
      try {
        return await policy.execute(fn)
      } catch (err) {
        if (err instanceof BrokenCircuitError) throw refusal(`${o.key} circuit open`, false)
        if (err instanceof UpstreamError) {
          if (err.retryAfterMs !== undefined && hold(Date.now() + err.retryAfterMs, 'us')) o.onHold?.(holdUntil)
          if (err.kind === 'transient') err.gate = o.key
        }
        throw err
      }
    },
    blocked: () => Date.now() < holdUntil || policy.state !== CircuitState.Closed,
    park (signal) {
      return new Promise(resolve => {
        if (signal.aborted) return resolve(undefined)
        const onAbort = (): void => {
          const at = waiters.indexOf(go)
          if (at >= 0) waiters.splice(at, 1)
          resolve(undefined)
        }
        function go (release: Release): void {
          signal.removeEventListener('abort', onAbort)
          resolve(release)
        }
        signal.addEventListener('abort', onAbort, { once: true })
        waiters.push(go)
        // The breaker may have closed (or the hold ended) since the failure that brought the event here.
        pump()
      })
    },
    holdUntil (until) { hold(until, 'another replica') },
    stats () {
      const state: BreakerState = policy.state === CircuitState.Closed ? 'closed' : policy.state === CircuitState.HalfOpen ? 'half-open' : 'open'
      const open = openMsTotal + (openSince === null ? 0 : Date.now() - openSince)
      return { target: o.key, state, waiting: waiters.length, openSeconds: open / 1000 }
    },
    close () {
      closed = true
      clearTimeout(timer)
    }
  }
}
