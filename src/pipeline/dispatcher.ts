import { setMaxListeners } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import PQueue from 'p-queue'
import type { Logger } from '../log.js'
import type { Tenant } from '../identity.js'
import type { Metrics } from '../metrics.js'
import type { LeasableEvent, Leases } from '../store/leases.js'
import type { Inbox, InboxEvent } from '../store/inbox.js'
import { LeaseLostError, type EventEnd, type Outcome } from '../store/outcomes.js'
import { isRetryable, UpstreamError } from '../upstream/errors.js'
import { correlationOf } from '../tracing/correlation.js'
import { backoffDelay, type RetryPolicy } from './retry.js'

export interface EventContext {
  event: InboxEvent
  tenant: Tenant
  /** 1 for the first attempt. */
  attempt: number
  /** Carries the event's correlation (event, source and trace ids); a handler that learns the source id adds it. */
  log: Logger
  /** Survives from one attempt to the next of this event (not across restarts). */
  memo: Record<string, unknown>
  /** The source the event concerns, once known (from the event, else from what the handler read). */
  sourceId?: string
}

export interface EventHandler {
  handle: (ctx: EventContext) => Promise<Outcome>
  /** What to record when the event's attempts run out. */
  exhausted: (ctx: EventContext, lastError: string) => Promise<Outcome>
}

export interface DispatcherOptions {
  inbox: Inbox
  leases: Leases
  /** How long a lease lasts unrenewed: a dead replica's sources wait at most this long. */
  leaseMs: number
  /** How often to look for work that other replicas stored or left. */
  pollMs: number
  handlerFor: (eventType: string) => EventHandler | undefined
  /** Must reject with LeaseLostError, writing nothing, when the event's lease is no longer this replica's. */
  recordOutcome: (end: EventEnd, outcome: Outcome) => Promise<void>
  /** Called after an outcome committed, e.g. to wake the status relay. */
  onOutcome: () => void
  concurrency: number
  /** Most events held in memory at once; the rest wait in the inbox. */
  window: number
  retry: RetryPolicy
  log: Logger
  metrics: Metrics
}

export interface Dispatcher {
  start: () => void
  /** Pull new inbox rows now. */
  wake: () => void
  /** Stop pulling; let running attempts end within `graceMs`. Waiting retries stay stored. */
  stop: (graceMs: number) => Promise<void>
  /** Gives up every lease, once running attempts have ended; for after `stop`. */
  releaseLeases: () => Promise<void>
  stats: () => { queuedEvents: number, queues: number, running: number }
}

const PAGE = 500

/**
 * Pulls pending events from the inbox in id order, in pages, into one
 * concurrency-1 queue per source; a global pool bounds running attempts. An
 * event waiting for its retry blocks its source but holds no pool slot.
 *
 * Replicas sharing a database share the work by leasing queue keys: a key is
 * run by one replica at a time, which renews its leases while it has work on
 * them; a dead replica's keys free up when their leases expire.
 */
export function createDispatcher (o: DispatcherOptions): Dispatcher {
  const queues = new Map<string, PQueue>()
  const slots = new PQueue({ concurrency: o.concurrency })
  const stopping = new AbortController()
  // Every event waiting for its retry listens for the stop.
  setMaxListeners(0, stopping.signal)
  /** Ids of the events held in memory, which the next read skips. */
  const held = new Set<number>()
  /**
   * Keys whose lease was lost: their events still queued here are dropped, not run, and the key
   * is not taken again until its queue is empty, so that no later event overtakes a dropped one.
   */
  const lost = new Set<string>()
  let lastRenewal = Date.now()
  let pulling = false
  let pullAgain = false
  let started = false
  let poller: NodeJS.Timeout | undefined
  let renewer: NodeJS.Timeout | undefined
  // Reading, taking and renewing leases run one at a time, so a renewal never releases a key a read just took.
  let leaseWork: Promise<unknown> = Promise.resolve()
  function serial<T> (fn: () => Promise<T>): Promise<T> {
    const next = leaseWork.then(fn)
    leaseWork = next.catch(() => {})
    return next
  }

  function report (): void {
    o.metrics.setQueued(held.size, queues.size)
  }

  function lose (keys: Iterable<string>): void {
    for (const key of keys) {
      lost.add(key)
      o.log.warn({ queueKey: key }, 'lease lost; another replica takes over this source')
    }
  }

  async function end (event: LeasableEvent, attempts: number, state: EventEnd['state'], outcome: Outcome, startedAt: number, log: Logger): Promise<void> {
    const write = { eventId: event.id, orgId: event.orgId, accountNumber: event.accountNumber, attempts, state, leaseKey: event.leaseKey, leaseOwner: o.leases.owner, trace: event.trace }
    // The upstream work is done; losing its record to a database hiccup would redo it, so insist.
    for (let failures = 0; ; failures++) {
      try {
        await o.recordOutcome(write, outcome)
        break
      } catch (err) {
        if (err instanceof LeaseLostError) {
          log.warn('lease lost before the outcome was recorded; the new holder runs the event again')
          return
        }
        if (stopping.signal.aborted) throw err
        log.error({ err }, 'recording an outcome failed; retrying')
        await sleep(Math.min(30_000, 500 * 2 ** failures))
      }
    }
    o.metrics.eventEnded(event.eventType, state, (Date.now() - startedAt) / 1000)
    if (outcome.status) o.onOutcome()
  }

  async function run (event: LeasableEvent, handler: EventHandler): Promise<void> {
    const correlation = correlationOf(event)
    let log = o.log.child({ eventType: event.eventType, queueKey: event.leaseKey, deliveryId: event.deliveryId, ...correlation })
    let sourceId = correlation.sourceId
    const tenant: Tenant = { orgId: event.orgId, accountNumber: event.accountNumber }
    const startedAt = Date.now()
    let attempts = event.attempts
    let wakeAt = event.nextAttemptAt.getTime()
    const memo: Record<string, unknown> = {}
    while (!stopping.signal.aborted && !lost.has(event.leaseKey)) {
      if (wakeAt > Date.now()) {
        try {
          await sleep(wakeAt - Date.now(), undefined, { signal: stopping.signal })
        } catch {
          return
        }
      }
      attempts++
      const ctx: EventContext = { event, tenant, attempt: attempts, log, memo, sourceId }
      type Attempt = { outcome: Outcome, err?: undefined } | { outcome?: undefined, err: Error }
      const result = await slots.add(async (): Promise<Attempt | undefined> => {
        // Queued for a slot when shutdown began: leave the event pending for the next start.
        if (stopping.signal.aborted) return undefined
        try {
          return { outcome: await handler.handle(ctx) }
        } catch (err) {
          return { err: err as Error }
        }
      })
      if (result === undefined) return
      // What the attempt learnt (the source id) goes on every later line about the event.
      log = ctx.log
      sourceId = ctx.sourceId
      if (result.outcome !== undefined) {
        await end(event, attempts, 'done', result.outcome, startedAt, log)
        return
      }
      const err = result.err
      o.metrics.eventAttemptFailed(event.eventType)
      const misconfigured = err instanceof UpstreamError && err.kind === 'misconfigured'
      if (misconfigured) {
        o.metrics.misconfigured(err.target)
        log.error({ target: err.target, status: err.status }, 'an upstream refused cloudoreg\'s own credentials; fix the configuration')
      }
      const message = err.message.slice(0, 1000)
      // Our own misconfiguration is never the customer's failure: it waits for an operator, however long.
      if (!misconfigured && (!isRetryable(err) || attempts >= o.retry.maxAttempts)) {
        log.warn({ attempts, error: message }, 'giving up on event')
        await end(event, attempts, 'dead', await handler.exhausted(ctx, message), startedAt, log)
        return
      }
      wakeAt = Date.now() + backoffDelay(o.retry, attempts)
      log.info({ attempts, error: message, retryInMs: wakeAt - Date.now() }, 'event attempt failed; will retry')
      // Only the restart schedule is lost if this write fails: the in-memory retry goes on.
      await o.inbox.scheduleRetry(event.id, attempts, new Date(wakeAt), message)
        .catch((e: Error) => log.error({ err: e }, 'storing the retry time failed'))
    }
  }

  function enqueue (event: LeasableEvent, handler: EventHandler): void {
    const key = event.leaseKey
    let queue = queues.get(key)
    if (queue === undefined) {
      const q = new PQueue({ concurrency: 1 })
      q.on('idle', () => {
        if (q.size === 0 && q.pending === 0 && queues.get(key) === q) {
          queues.delete(key)
          lost.delete(key)
        }
        report()
      })
      queues.set(key, q)
      queue = q
    }
    held.add(event.id)
    queue.add(async () => {
      try {
        await run(event, handler)
      } finally {
        held.delete(event.id)
        if (held.size <= o.window / 2) wake()
      }
    }).catch((err: Error) => {
      // Only when stopping with the database gone: the row stays pending for the next start.
      o.log.error({ err, ...correlationOf(event) }, 'event task failed')
    })
  }

  async function pull (): Promise<void> {
    while (!stopping.signal.aborted && held.size < o.window) {
      const found = await serial(async () => {
        const rows = await o.leases.candidates(Math.min(PAGE, o.window - held.size), [...held])
        const ignored: InboxEvent[] = []
        const runnable: Array<{ event: LeasableEvent, handler: EventHandler }> = []
        for (const event of rows) {
          const handler = o.handlerFor(event.eventType)
          if (handler === undefined) ignored.push(event)
          else if (!lost.has(event.leaseKey)) runnable.push({ event, handler })
        }
        if (ignored.length > 0) {
          await o.inbox.markIgnored(ignored.map(e => e.id), 'no action for this event type')
          for (const e of ignored) o.metrics.eventEnded(e.eventType, 'ignored', 0)
        }
        // Another replica may have taken a free key since the read: its events are that replica's.
        const taken = await o.leases.take([...new Set(runnable.map(r => r.event.leaseKey))])
        if (stopping.signal.aborted) return 0
        let enqueued = 0
        for (const { event, handler } of runnable) {
          if (!taken.has(event.leaseKey)) continue
          enqueue(event, handler)
          enqueued++
        }
        return rows.length === 0 ? 0 : enqueued + ignored.length
      })
      if (found === 0) break
    }
    report()
  }

  async function renew (): Promise<void> {
    await serial(async () => {
      const active = [...queues.keys()]
      try {
        const kept = await o.leases.renew(active)
        lastRenewal = Date.now()
        lose(active.filter(key => !kept.has(key) && queues.has(key)))
      } catch (err) {
        o.log.error({ err }, 'renewing leases failed')
        // Past the lease, another replica may run these keys: stop starting their events here.
        if (Date.now() - lastRenewal >= o.leaseMs) lose(active.filter(key => queues.has(key)))
      }
    })
  }

  function wake (): void {
    if (!started || stopping.signal.aborted) return
    if (pulling) {
      pullAgain = true
      return
    }
    pulling = true
    pull()
      .catch((err: Error) => {
        o.log.error({ err }, 'reading the inbox failed; retrying shortly')
        setTimeout(wake, 1000).unref()
      })
      .finally(() => {
        pulling = false
        if (pullAgain) {
          pullAgain = false
          wake()
        }
      })
  }

  return {
    start () {
      started = true
      lastRenewal = Date.now()
      poller = setInterval(wake, o.pollMs).unref()
      renewer = setInterval(() => { void renew() }, Math.max(100, Math.floor(o.leaseMs / 3))).unref()
      wake()
    },
    wake,
    async stop (graceMs) {
      clearInterval(poller)
      clearInterval(renewer)
      stopping.abort()
      for (const q of queues.values()) q.clear()
      const idle = Promise.all([slots.onIdle(), ...[...queues.values()].map(q => q.onIdle())])
      await Promise.race([idle, sleep(graceMs, undefined, { ref: false })])
    },
    async releaseLeases () {
      await serial(() => o.leases.releaseAll())
    },
    stats: () => ({ queuedEvents: held.size, queues: queues.size, running: slots.pending })
  }
}
