import { setTimeout as sleep } from 'node:timers/promises'
import PQueue from 'p-queue'
import type { LeasableEvent, Leases } from '../store/leases.js'
import type { Inbox, InboxEvent } from '../store/inbox.js'
import { LANES } from '../events/lanes.js'
import { createLeaseKeeper } from './lease-keeper.js'
import { createRunner, logFinished, type EventHandler, type RunnerOptions } from './runner.js'

export interface SchedulerOptions extends Omit<RunnerOptions, 'keeper' | 'stopping'> {
  inbox: Inbox
  leases: Leases
  /** How long a lease lasts unrenewed: a dead replica's sources wait at most this long. */
  leaseMs: number
  /** How often to look for work that other replicas stored or left. */
  pollMs: number
  handlerFor: (eventType: string) => EventHandler | undefined
  /** Most events held in memory at once; the rest wait in the inbox. */
  window: number
  /** Checks the database after a failure: while it is lost (the health monitor said so once), failures here are not logged again. */
  databaseDown?: () => Promise<boolean>
}

export interface Scheduler {
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
 * Of the window, this many events are kept for the customer lane: re-checks and bulk work fill at most
 * the rest, so that a create never waits for a wave held in memory to drain first.
 */
export function customerReserve (window: number): number {
  return Math.floor(window / 10)
}

/**
 * Pulls pending events from the inbox in pages into one concurrency-1 queue per source (its lease
 * key), for the runner to run; keys are leased so that replicas sharing a database share the work
 * (the lease keeper). Which sources come first is the inbox's choice (lanes, then turns between
 * orgs: `Leases.candidates`), kept here by queueing them in that order; each source's events are
 * queued in id order.
 */
export function createScheduler (o: SchedulerOptions): Scheduler {
  const queues = new Map<string, PQueue>()
  const stopping = new AbortController()
  const keeper = createLeaseKeeper({ leases: o.leases, leaseMs: o.leaseMs, active: queues, log: o.log, databaseDown: o.databaseDown })
  const runner = createRunner({ ...o, keeper, stopping: stopping.signal })
  /** Ids of the events held in memory, which the next read skips. */
  const held = new Set<number>()
  const reserve = customerReserve(o.window)
  /**
   * The last read found nothing more to take: until something is appended (`wake` from the inbox) or
   * the poll comes round, an event ending here frees no work, so it reads nothing (each read groups
   * every pending event). Cleared when a read stops because the window is full.
   */
  let drained = false
  let pulling = false
  let pullAgain = false
  let started = false
  let poller: NodeJS.Timeout | undefined

  function report (): void {
    o.metrics.setQueued(held.size, queues.size)
  }

  function enqueue (event: LeasableEvent, handler: EventHandler): void {
    const key = event.leaseKey
    let queue = queues.get(key)
    if (queue === undefined) {
      const q = new PQueue({ concurrency: 1 })
      q.on('idle', () => {
        if (q.size === 0 && q.pending === 0 && queues.get(key) === q) {
          queues.delete(key)
          keeper.forget(key)
        }
        report()
      })
      queues.set(key, q)
      queue = q
    }
    held.add(event.id)
    queue.add(async () => {
      try {
        await runner.run(event, handler)
      } finally {
        held.delete(event.id)
        // Refill a window that was full; an inbox read to its end has nothing more until told.
        if (held.size <= o.window / 2 && !drained) wake()
      }
    }).catch((err: Error) => {
      // Expected only when stopping with the database gone: the row stays pending for the next start.
      // Anything else is a bug to fix at its root: the row stays pending and runs again, but after the
      // events of its queue key already held here (a numeric error code once did this; see failureOf).
      o.log.error({ err, eventId: event.id }, 'event task failed')
    })
  }

  async function pull (): Promise<void> {
    while (!stopping.signal.aborted) {
      // The last tenth of the window takes customer work only.
      const room = o.window - held.size
      const lowerRoom = room - reserve
      const limit = Math.min(PAGE, lowerRoom > 0 ? lowerRoom : room)
      if (limit <= 0) {
        drained = false
        break
      }
      const found = await keeper.exclusive(async () => {
        const rows = await o.leases.candidates(limit, [...held], lowerRoom > 0 ? LANES.bulk : LANES.customer)
        const ignored: InboxEvent[] = []
        const runnable: Array<{ event: LeasableEvent, handler: EventHandler }> = []
        for (const event of rows) {
          const handler = o.handlerFor(event.eventType)
          if (handler === undefined) ignored.push(event)
          else if (!keeper.isLost(event.leaseKey)) runnable.push({ event, handler })
        }
        if (ignored.length > 0) {
          await o.inbox.markIgnored(ignored.map(e => e.id), 'no action for this event type')
          for (const e of ignored) {
            o.metrics.eventEnded(e.eventType, 'ignored', 0)
            logFinished(o.log, e, { state: 'ignored', outcome: { note: 'no action for this event type' }, attempts: 0, durationMs: 0, sourceId: e.sourceId })
          }
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
      if (found === 0) {
        // A read of the customer lane alone (the window's reserve) says nothing of the other lanes.
        drained = lowerRoom > 0
        break
      }
    }
    report()
  }

  function wake (): void {
    if (!started || stopping.signal.aborted) return
    if (pulling) {
      pullAgain = true
      return
    }
    pulling = true
    pull()
      .catch(async (err: Error) => {
        setTimeout(wake, 1000).unref()
        if (await o.databaseDown?.() !== true) o.log.error({ err }, 'reading the inbox failed; retrying shortly')
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
      keeper.start()
      poller = setInterval(wake, o.pollMs).unref()
      wake()
    },
    wake,
    async stop (graceMs) {
      clearInterval(poller)
      keeper.stop()
      stopping.abort()
      for (const q of queues.values()) q.clear()
      const idle = Promise.all([runner.onIdle(), ...[...queues.values()].map(q => q.onIdle())])
      await Promise.race([idle, sleep(graceMs, undefined, { ref: false })])
    },
    releaseLeases: () => keeper.releaseAll(),
    stats: () => ({ queuedEvents: held.size, queues: queues.size, running: runner.running() })
  }
}
