import { setTimeout as sleep } from 'node:timers/promises'
import { backoffDelay, type Backoff } from '../backoff.js'
import type { Logger } from '../log.js'
import type { Outbox, SendDeadline, StatusFailure, StatusMessage, StatusRetry } from '../store/outbox.js'
import { traceHeaders } from '../tracing/context.js'

export interface StatusSink {
  name: string
  /**
   * Resolves once every message was accepted (e.g. acknowledged by the broker), except those it
   * names as failed; rejects when the sink itself is unreachable (nothing is then blamed on a message).
   * A sink that sends one message at a time starts none after `deadline` (they are named as deferred).
   */
  send: (messages: StatusMessage[], deadline: SendDeadline) => Promise<StatusFailure[] | undefined | void>
  close: () => Promise<void>
}

export interface StatusRelayOptions {
  outbox: Outbox
  sink: StatusSink
  log: Logger
  /** How often to look for unsent rows without being woken (rows left by a crash, failed sends). */
  pollMs: number
  batchSize?: number
  /** Sends of a failed message before it is parked, and the delay between them. */
  retry: StatusRetry
  /** Checks the database after a failure: while it is lost (said once by its health monitor), failures are not logged. */
  databaseDown?: () => Promise<boolean>
}

export interface StatusRelay {
  start: () => void
  wake: () => void
  /** Sends what is unsent for up to `graceMs`, then stops. */
  stop: (graceMs: number) => Promise<void>
}

/** The sink (the broker, sources-api) or the database is down: wait longer and longer, up to 30 s. */
const SEND_BACKOFF: Backoff = { firstMs: 500, maxMs: 30_000, jitter: 0.5 }

/** Publishes status outbox rows; a row is marked sent only after the sink accepted it. */
export function createStatusRelay (o: StatusRelayOptions): StatusRelay {
  let wakeUp: (() => void) | undefined
  let woken = false
  let draining = false
  let stopped = false
  let loop: Promise<void> | undefined

  function wake (): void {
    woken = true
    wakeUp?.()
  }

  async function idle (ms: number): Promise<void> {
    if (woken) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(resolve, ms)
      wakeUp = () => { clearTimeout(timer); resolve() }
    })
    wakeUp = undefined
  }

  async function run (): Promise<void> {
    let failures = 0
    // eslint-disable-next-line no-unmodified-loop-condition -- stop() sets it while this loop awaits
    while (!stopped) {
      woken = false
      try {
        const sent = await o.outbox.relay(o.batchSize ?? 500, async (batch, deadline) => {
          const failures = await o.sink.send(batch, deadline) ?? []
          const byId = new Map(batch.map(m => [m.id, m]))
          for (const f of failures) {
            if (f.deferred === true) continue
            const m = byId.get(f.id)!
            const parked = f.permanent || m.attempts + 1 >= o.retry.maxAttempts
            o.log.warn({ statusId: m.id, applicationId: m.applicationId, attempts: m.attempts + 1, error: f.error, sink: o.sink.name },
              parked ? 'status message parked: an operator can retry it (GET /internal/v1/status-messages/parked)' : 'status message not delivered; will retry')
          }
          return failures
        }, o.retry)
        if (sent === 0) {
          if (draining) return
          await idle(o.pollMs)
          continue
        }
        if (failures > 0) o.log.info({ sink: o.sink.name }, 'status messages flowing again')
        failures = 0
        woken = true
      } catch (err) {
        failures++
        const delay = backoffDelay(SEND_BACKOFF, failures)
        if ((failures === 1 || failures % 10 === 0) && await o.databaseDown?.() !== true) {
          o.log.warn({ err, sink: o.sink.name, failures }, 'sending status messages failed; will retry')
        }
        if (draining) return
        await sleep(delay)
      }
    }
  }

  return {
    start () {
      loop ??= run()
    },
    wake,
    async stop (graceMs) {
      draining = true
      wake()
      if (loop) await Promise.race([loop, sleep(graceMs, undefined, { ref: false })])
      stopped = true
      wake()
      // A Kafka disconnect waits for in-flight requests, up to the request timeout during an outage;
      // what it has not sent stays in the outbox for the next start.
      await Promise.race([o.sink.close(), sleep(1000, undefined, { ref: false })])
    }
  }
}

/** The body and headers of DESIGN.md's availability message, with the trace of the event that decided it. */
export function availabilityMessage (m: StatusMessage): { key: string, value: string, headers: Record<string, string> } {
  const headers: Record<string, string> = { event_type: 'availability_status', 'x-rh-sources-org-id': m.orgId }
  if (m.accountNumber) headers['x-rh-sources-account-number'] = m.accountNumber
  // W3C trace context as Kafka headers (as the OpenTelemetry Kafka instrumentations carry it).
  if (m.trace !== null) Object.assign(headers, traceHeaders(m.trace))
  return {
    key: m.orgId,
    value: JSON.stringify({ resource_type: 'Application', resource_id: m.applicationId, status: m.status, error: m.error }),
    headers
  }
}
